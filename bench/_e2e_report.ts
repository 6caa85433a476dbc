/**
 * Statistics, markdown tables and a hand-written SVG bar chart for
 * bench/e2e_throughput.ts (no dependency).
 *
 * @module
 */

/** Median of a non-empty list (mean of the middle two for even lengths). */
export function median(values: readonly number[]): number {
  if (values.length === 0) return NaN;
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

/** A markdown table, columns padded so it also reads well as plain text. */
export function markdownTable(
  header: readonly string[],
  rows: readonly (readonly string[])[],
  align: readonly ("l" | "r")[] = [],
): string {
  const widths = header.map((h, i) =>
    Math.max(3, h.length, ...rows.map((r) => (r[i] ?? "").length))
  );
  const pad = (c: string, i: number) =>
    align[i] === "r" ? c.padStart(widths[i]) : c.padEnd(widths[i]);
  const line = (cells: readonly string[]) =>
    "| " + cells.map((c, i) => pad(c, i)).join(" | ") + " |";
  const rule = "|" +
    widths.map((w, i) =>
      align[i] === "r" ? "-".repeat(w + 1) + ":" : "-".repeat(w + 2)
    ).join("|") + "|";
  return [line(header), rule, ...rows.map(line)].join("\n");
}

/** One group of bars (e.g. one cipher and direction). */
export interface BarGroup {
  /** Label left of the group. */
  label: string;
  /** One value per series, NaN when not measured. */
  values: readonly number[];
}

/** A horizontal grouped bar chart. */
export interface BarChart {
  /** Title above the chart. */
  title: string;
  /** Unit printed after each value, e.g. "MB/s". */
  unit: string;
  /** Name of each series (legend), in bar order. */
  series: readonly string[];
  /** Groups, top to bottom. */
  groups: readonly BarGroup[];
  /** Digits after the point in value labels. @default 0 */
  digits?: number;
}

const COLORS = ["#2b6cb0", "#dd6b20", "#718096", "#38a169", "#805ad5"];

function escapeXml(s: string): string {
  return s.replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll(
    ">",
    "&gt;",
  );
}

/** Draws charts stacked vertically in one SVG document. */
export function svgCharts(charts: readonly BarChart[], note = ""): string {
  const width = 760;
  const labelWidth = 230;
  const valueWidth = 90;
  const barHeight = 13;
  const plot = width - labelWidth - valueWidth - 20;
  const parts: string[] = [];
  let y = 10;
  for (const chart of charts) {
    y += 18;
    parts.push(
      `<text x="10" y="${y}" font-size="15" font-weight="bold">${
        escapeXml(chart.title)
      }</text>`,
    );
    y += 10;
    // Legend, one row.
    let x = 10;
    chart.series.forEach((name, i) => {
      parts.push(
        `<rect x="${x}" y="${y}" width="12" height="12" fill="${
          COLORS[i % COLORS.length]
        }"/>`,
        `<text x="${x + 16}" y="${y + 10}" font-size="12">${
          escapeXml(name)
        }</text>`,
      );
      x += 24 + name.length * 7;
    });
    y += 24;
    const max = Math.max(
      1e-9,
      ...chart.groups.flatMap((g) => g.values.filter(Number.isFinite)),
    );
    for (const group of chart.groups) {
      const groupHeight = chart.series.length * (barHeight + 2);
      parts.push(
        `<text x="${labelWidth - 8}" y="${
          y + groupHeight / 2 + 4
        }" font-size="12" text-anchor="end">${escapeXml(group.label)}</text>`,
      );
      group.values.forEach((v, i) => {
        const by = y + i * (barHeight + 2);
        if (!Number.isFinite(v)) {
          parts.push(
            `<text x="${labelWidth + 4}" y="${
              by + barHeight - 2
            }" font-size="11" fill="#718096">${
              escapeXml(chart.series[i])
            }: not measured</text>`,
          );
          return;
        }
        const w = Math.max(1, (v / max) * plot);
        parts.push(
          `<rect x="${labelWidth}" y="${by}" width="${
            w.toFixed(1)
          }" height="${barHeight}" fill="${COLORS[i % COLORS.length]}">` +
            `<title>${escapeXml(chart.series[i])}: ${
              v.toFixed(chart.digits ?? 0)
            } ${escapeXml(chart.unit)}</title></rect>`,
          `<text x="${(labelWidth + w + 4).toFixed(1)}" y="${
            by + barHeight - 2
          }" font-size="11">${v.toFixed(chart.digits ?? 0)} ${
            escapeXml(chart.unit)
          }</text>`,
        );
      });
      y += groupHeight + 10;
    }
    y += 10;
  }
  if (note) {
    parts.push(
      `<text x="10" y="${y}" font-size="11" fill="#4a5568">${
        escapeXml(note)
      }</text>`,
    );
    y += 14;
  }
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${
    y + 6
  }" viewBox="0 0 ${width} ${
    y + 6
  }" font-family="Helvetica, Arial, sans-serif">\n` +
    `<rect width="100%" height="100%" fill="white"/>\n` +
    parts.join("\n") + "\n</svg>\n";
}
