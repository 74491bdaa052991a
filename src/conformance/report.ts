// conformance/report: the TestReports of a run written out: one testreport-<id>.json per
// TestScript, and a summary as report.md and report.html.

import fs from 'node:fs';
import path from 'node:path';
import type { ActionResult, ReportAction, TestReport } from './types.js';

export interface ScriptOutcome {
  file: string;
  report: TestReport;
}

interface Row {
  script: string;
  section: string;
  result: ActionResult;
}

const ICON: Record<ActionResult['result'], string> = { pass: 'pass', warning: 'WARNING', fail: 'FAIL', error: 'ERROR', skip: 'skip' };

function rows(report: TestReport): Row[] {
  const script = report.name ?? report.id ?? '';
  const of = (section: string, actions: ReportAction[] = []) => actions.map((a) => ({ script, section, result: (a.operation ?? a.assert)! }));
  return [
    ...of('setup', report.setup?.action),
    ...(report.test ?? []).flatMap((t) => of(t.name ?? 'test', t.action)),
    ...of('teardown', report.teardown?.action),
  ];
}

/** Counts of assert results over the reports (operations aside). */
export function tally(reports: TestReport[]): Record<ActionResult['result'], number> {
  const counts = { pass: 0, warning: 0, fail: 0, error: 0, skip: 0 };
  for (const report of reports) {
    for (const a of [...(report.setup?.action ?? []), ...(report.test ?? []).flatMap((t) => t.action)]) {
      const r = a.assert ?? (a.operation?.result === 'error' ? a.operation : undefined);
      if (r) counts[r.result]++;
    }
  }
  return counts;
}

export function summaryLine(reports: TestReport[]): string {
  const c = tally(reports);
  const failed = reports.filter((r) => r.result !== 'pass').length;
  return `conformance: ${reports.length - failed} of ${reports.length} TestScripts passed; asserts: ${c.pass} passed, ${c.warning} warnings, ${c.fail} failed, ${c.error} errors, ${c.skip} skipped`;
}

export function markdown(outcomes: ScriptOutcome[], base: string): string {
  const reports = outcomes.map((o) => o.report);
  const lines = [`# Conformance report`, '', `Server: ${base}  `, `Run: ${reports[0]?.issued ?? ''}  `, summaryLine(reports), '', '| TestScript | result | score | file |', '|---|---|---|---|'];
  for (const { file, report } of outcomes) lines.push(`| ${report.name} | ${report.result === 'pass' ? 'pass' : '**FAIL**'} | ${report.score ?? ''} | ${file} |`);
  for (const { report } of outcomes) {
    lines.push('', `## ${report.name}: ${report.result}`, '');
    for (const row of rows(report)) lines.push(`- ${ICON[row.result.result]} — ${row.section}: ${(row.result.message ?? '').replace(/\s+/g, ' ').replace(/\|/g, '\\|')}`);
  }
  return `${lines.join('\n')}\n`;
}

const escape = (s: string) => s.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]!);

export function html(outcomes: ScriptOutcome[], base: string): string {
  const reports = outcomes.map((o) => o.report);
  const sections = outcomes
    .map(
      ({ report }) => `<h2 class="${report.result}">${escape(report.name ?? '')}: ${report.result} (score ${report.score ?? ''})</h2>
<table><tr><th>section</th><th>result</th><th>message</th></tr>
${rows(report)
  .map((r) => `<tr class="${r.result.result}"><td>${escape(r.section)}</td><td>${r.result.result}</td><td>${escape(r.result.message ?? '')}</td></tr>`)
  .join('\n')}
</table>`,
    )
    .join('\n');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Carnet conformance report</title>
<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;width:100%}td,th{border:1px solid #ccc;padding:.3em;text-align:left;vertical-align:top;font-size:90%}
.pass td:nth-child(2),h2.pass{color:#060}.fail,.error{background:#fdd}.warning{background:#ffd}.skip{color:#888}</style></head>
<body><h1>Carnet conformance report</h1>
<p>Server: ${escape(base)}<br>Run: ${escape(reports[0]?.issued ?? '')}<br>${escape(summaryLine(reports))}</p>
<table><tr><th>TestScript</th><th>result</th><th>score</th><th>file</th></tr>
${outcomes.map(({ file, report }) => `<tr class="${report.result}"><td>${escape(report.name ?? '')}</td><td>${report.result}</td><td>${report.score ?? ''}</td><td>${escape(file)}</td></tr>`).join('\n')}
</table>
${sections}
</body></html>
`;
}

/** Writes every TestReport and the two summaries into `dir` (created if missing). */
export function writeReports(dir: string, outcomes: ScriptOutcome[], base: string): void {
  fs.mkdirSync(dir, { recursive: true });
  for (const { report, file } of outcomes) {
    const name = (report.id ?? path.basename(file, '.json')).replace(/[^A-Za-z0-9.-]/g, '-');
    fs.writeFileSync(path.join(dir, `testreport-${name}.json`), `${JSON.stringify(report, null, 2)}\n`);
  }
  fs.writeFileSync(path.join(dir, 'report.md'), markdown(outcomes, base));
  fs.writeFileSync(path.join(dir, 'report.html'), html(outcomes, base));
}
