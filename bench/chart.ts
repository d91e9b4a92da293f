// The bench's chart as a self-contained SVG (no dependency): one group per workload and
// digest setting, a bar for each target scaled to the faster of the two, its figure at
// the bar's end, and the ratio ours/tgt on the right.

import type { Row, Workload } from './bench';

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

export function renderChart(rows: Row[], workloads: Workload[], title: string): string {
  const left = 230;
  const barMax = 420;
  const right = 90;
  const barH = 14;
  const groupH = 2 * barH + 14;
  const top = 56;
  const width = left + barMax + right;
  const height = top + rows.length * groupH + 30;
  const colors = { ours: '#2f7ed8', tgt: '#a0a0a0' };
  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="100%" height="100%" fill="#fff"/>`,
    `<text x="10" y="20" font-size="14" font-weight="bold">${esc(title)}</text>`,
    `<rect x="10" y="32" width="12" height="12" fill="${colors.ours}"/><text x="26" y="42">iscsi-target (ours)</text>`,
    `<rect x="150" y="32" width="12" height="12" fill="${colors.tgt}"/><text x="166" y="42">tgt</text>`,
    `<text x="${left + barMax + 10}" y="42" font-weight="bold">ours/tgt</text>`,
  );
  rows.forEach((r, i) => {
    const w = workloads.find((x) => x.id === r.workload);
    const big = (w?.size ?? 0) >= 65536;
    const value = (a: Row['ours']) => (a ? (big ? a.mbps : a.iops) : 0);
    const label = (a: Row['ours']) => (a ? (big ? `${(a.mbps / 1000).toFixed(2)} GB/s` : `${(a.iops / 1000).toFixed(1)}K IOPS`) : 'n/a');
    const max = Math.max(value(r.ours), value(r.tgt), 1);
    const y = top + i * groupH;
    out.push(
      `<text x="10" y="${y + barH + 4}">${esc(r.title)}</text>`,
      `<text x="10" y="${y + 2 * barH + 4}" fill="#666">digest ${r.digest ? 'CRC32C' : 'none'}</text>`,
    );
    (['ours', 'tgt'] as const).forEach((t, j) => {
      const a = r[t];
      const len = Math.max(1, Math.round((value(a) / max) * (barMax - 90)));
      const by = y + j * barH + 2;
      out.push(
        `<rect x="${left}" y="${by}" width="${len}" height="${barH - 2}" fill="${colors[t]}"/>`,
        `<text x="${left + len + 4}" y="${by + barH - 4}">${esc(label(a))}</text>`,
      );
    });
    if (r.ratio !== undefined) {
      const color = r.ratio >= 1 ? '#1a7f37' : '#cf222e';
      out.push(`<text x="${left + barMax + 10}" y="${y + barH + 8}" font-weight="bold" fill="${color}">${r.ratio.toFixed(2)}×</text>`);
    }
  });
  out.push('</svg>');
  return out.join('\n') + '\n';
}
