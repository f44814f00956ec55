/**
 * Acceptance of the operator screen in a real browser (Debian chromium driven by playwright-core): the gateway with
 * the demo models and the simulator streaming a truck with a false declaration and planted threats in real time.
 * The screen must show the scan growing, a goods suggestion and a threat alert before the scan completes, record an
 * officer's decision, and after a gateway restart show the scan and the decision in its history. Screenshots go to
 * test-results/.
 */
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { simulatePortals, type SimulationSummary } from '../../src/simulator/index.js';
import { getJson, startTestGateway, type TestGateway } from '../helpers/gateway.js';

const CHROMIUM = '/usr/bin/chromium';
const CONFIG = { inference: { enabled: true } };
const SHOTS = join(process.cwd(), 'test-results');

async function columns(page: Page): Promise<number> {
  return Number(await page.getAttribute('#scan-view', 'data-columns'));
}

describe.skipIf(!existsSync(CHROMIUM))('operator screen in chromium', () => {
  const dir = mkdtempSync(join(tmpdir(), 'scanline-ui-'));
  let gw: TestGateway;
  let browser: Browser;
  let page: Page;
  let sim: Promise<SimulationSummary>;
  const pageErrors: string[] = [];

  beforeAll(async () => {
    mkdirSync(SHOTS, { recursive: true });
    gw = await startTestGateway(CONFIG, {}, dir);
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
    page = await browser.newPage({ viewport: { width: 1500, height: 850 } });
    page.on('pageerror', (e) => pageErrors.push(e.message));
    await page.goto(`${gw.httpUrl}/?operator=officer-17`);
    await page.waitForSelector('#conn[data-state="open"]');
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    await gw?.close(5_000);
    rmSync(dir, { recursive: true, force: true });
  });

  it('shows the scan growing with a suggestion and the planted threat raised before the scan completes', async () => {
    // Cigarettes declared as something else, with narcotics and a firearm in the load (as test/results does).
    sim = simulatePortals({ url: gw.portalUrl, portals: 1, trucks: 1, seed: 5200, truck: { categories: ['tobacco'], threats: ['narcotics', 'firearm'], mismatchProbability: 1 } });
    await page.waitForSelector('#scan-view[data-state="receiving"]', { timeout: 30_000 });
    await page.waitForFunction(() => Number(document.querySelector('#scan-view')?.getAttribute('data-columns')) > 0, undefined, { timeout: 30_000 });
    const first = await columns(page);
    await page.waitForTimeout(1000);
    expect(await page.getAttribute('#scan-view', 'data-state')).toBe('receiving');
    expect(await columns(page)).toBeGreaterThan(first);

    const suggestion = await page.waitForSelector('.suggestion.goods', { timeout: 60_000 });
    expect(await suggestion.getAttribute('data-seen-while')).toBe('receiving');
    const alert = await page.waitForSelector('.alert-item[data-alert-id]', { timeout: 60_000 });
    expect(await alert.getAttribute('data-seen-while')).toBe('receiving');
    expect(await alert.textContent()).toMatch(/while scanning/);
    await page.screenshot({ path: join(SHOTS, 'operator-screen-live.png') });

    const summary = await sim;
    expect(summary.scansCompleted).toBe(1);
    await page.waitForSelector('#scan-view[data-state="completed"]', { timeout: 30_000 });
    expect(await page.textContent('#declaration')).toMatch(/mismatch/);
  }, 180_000);

  it('records the officer decision with a rated suggestion and a comment', async () => {
    const scanId = (await page.getAttribute('#scan-view', 'data-scan-id')) as string;
    const rated = (await page.getAttribute('.suggestion.goods', 'data-suggestion-id')) as string;
    await page.click('.suggestion.goods [data-rate="accept"]');
    await page.fill('#comment', 'cigarettes behind the timber; open the rear doors');
    await page.click('#btn-inspect');
    await page.waitForSelector('#decision-status[data-recorded="inspect"]');
    await page.waitForSelector('.decision-item[data-verdict="inspect"]');
    await page.screenshot({ path: join(SHOTS, 'operator-screen-decided.png') });
    const { body } = await getJson(gw, `/v1/scans/${encodeURIComponent(scanId)}`);
    expect(body.decisions).toMatchObject([
      { operatorId: 'officer-17', verdict: 'inspect', comment: 'cigarettes behind the timber; open the rear doors', suggestions: { [rated]: 'accept' } },
    ]);
    expect(['ALARM', 'UNKNOWN']).toContain(body.decisions[0].machineDecision);
  }, 60_000);

  it('finds the scan and the decision in the history after a gateway restart', async () => {
    const scanId = (await page.getAttribute('#scan-view', 'data-scan-id')) as string;
    await gw.close(10_000);
    gw = await startTestGateway(CONFIG, {}, dir);
    await page.goto(`${gw.httpUrl}/?operator=officer-17`);
    await page.waitForSelector('#conn[data-state="open"]');
    const row = await page.waitForSelector(`.history-row[data-scan-id="${scanId}"]`);
    expect(await row.$eval('.verdict', (e) => e.getAttribute('data-verdict'))).toBe('inspect');
    await row.click();
    await page.waitForSelector('.decision-item[data-verdict="inspect"]');
    await page.waitForFunction(() => Number(document.querySelector('#scan-view')?.getAttribute('data-columns')) > 0);
    expect(pageErrors).toEqual([]);
  }, 120_000);
});
