export async function main(argv: string[]): Promise<number> {
  process.stderr.write(`tollgate: no commands yet (${argv.join(" ")})\n`);
  return 2;
}
