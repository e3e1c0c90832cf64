import { type Address, type Hex, toHex } from "viem";
import { mnemonicToAccount } from "viem/accounts";

/** anvil's well-known development mnemonic; its keys hold test ETH only. */
export const DEV_MNEMONIC = "test test test test test test test test test test test junk";

/** An address with the private key that controls it. */
export type KeyedAccount = { address: Address; privateKey: Hex };

/** The account at `index` of the development mnemonic (m/44'/60'/0'/0/index). */
export function devAccount(index: number): KeyedAccount {
  const account = mnemonicToAccount(DEV_MNEMONIC, { addressIndex: index });
  const privateKey = account.getHdKey().privateKey;
  if (!privateKey) throw new Error(`no private key at index ${index}`);
  return { address: account.address, privateKey: toHex(privateKey) };
}

/** Which development account plays which role on the devnet. */
export const devAccountRoles = {
  deployer: 0,
  facilitator: 1,
  payTo: 2,
  /**
   * Buyers take indexes 3, 4, 5, … anvil pre-funds only indexes 0–9 with ETH, so `startDevnet`
   * gives each buyer its ETH itself.
   */
  firstBuyer: 3,
  /** Fresh buyers (USDC only, no gas, no Permit2 approval) come after the most buyers (3 + 50). */
  firstFreshBuyer: 53,
} as const;
