export { escapeHtml, renderFigures, renderTable, shortHex } from "./html.js";
export { type BarPoint, renderBarChart } from "./renderBarChart.js";
export {
  type DashboardSection,
  dashboardContentSecurityPolicy,
  renderDashboardPage,
} from "./renderDashboardPage.js";
