// conformance/suite: finds TestScripts (files or folders of *.json) and runs them one after the other.

import fs from 'node:fs';
import path from 'node:path';
import type { TestScript } from './types.js';
import { runTestScript, type RunOptions } from './runner.js';
import type { ScriptOutcome } from './report.js';

/** Every TestScript JSON under `paths` (folders: their *.json files holding a TestScript, in name order). */
export function findScripts(paths: string[]): Array<{ file: string; script: TestScript }> {
  const files: string[] = [];
  for (const p of paths) {
    if (fs.statSync(p).isDirectory()) {
      for (const name of fs.readdirSync(p).sort()) if (name.endsWith('.json')) files.push(path.join(p, name));
    } else files.push(p);
  }
  return files.flatMap((file) => {
    const json = JSON.parse(fs.readFileSync(file, 'utf8')) as { resourceType?: string };
    return json.resourceType === 'TestScript' ? [{ file, script: json as TestScript }] : [];
  });
}

/** Runs each TestScript against `options.base`; `onReport` sees each report as it is made. */
export async function runScripts(scripts: Array<{ file: string; script: TestScript }>, options: Omit<RunOptions, 'scriptFile'>, onReport?: (o: ScriptOutcome) => void): Promise<ScriptOutcome[]> {
  const outcomes: ScriptOutcome[] = [];
  for (const { file, script } of scripts) {
    const report = await runTestScript(script, { ...options, scriptFile: file });
    const outcome = { file, report };
    onReport?.(outcome);
    outcomes.push(outcome);
  }
  return outcomes;
}
