/**
 * ops/scanline.service is what a site installs: it must parse (`systemd-analyze verify`, where systemd is installed)
 * and agree with the gateway's own shutdown contract, so that systemd's SIGKILL never cuts a drain short and a
 * configuration error is not restarted in a loop. Running it under systemd needs a host with systemd as PID 1.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { needTool } from '../helpers/tools.js';
import { DEFAULT_CONFIG } from '../../src/config/index.js';

const UNIT = new URL('../../ops/scanline.service', import.meta.url).pathname;
const text = readFileSync(UNIT, 'utf8');

/** The last value of each `Key=value` line (later lines override earlier ones, as in systemd). */
function settings(): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of text.split('\n')) {
    const m = /^([A-Za-z]+)=(.*)$/.exec(line.trim());
    if (m) out.set(m[1], m[2]);
  }
  return out;
}

describe('ops/scanline.service', () => {
  const s = settings();

  it('runs `scanline serve --config` as its own user', () => {
    expect(s.get('ExecStart')).toMatch(/\bnode \S*bin\/scanline\.js serve --config \/etc\/scanline\/config\.yaml$/);
    expect(s.get('User')).toBe('scanline');
    expect(s.get('NoNewPrivileges')).toBe('yes');
    expect(s.get('ProtectSystem')).toBe('strict');
    expect(s.get('ReadWritePaths')).toBe('/var/lib/scanline');
  });

  it('stops with SIGTERM and waits longer than shutdown.exitTimeoutMs before killing', () => {
    expect(s.get('KillSignal')).toBe('SIGTERM');
    expect(Number(s.get('TimeoutStopSec')) * 1000).toBeGreaterThan(DEFAULT_CONFIG.shutdown.exitTimeoutMs);
  });

  it('restarts after failures but not after a configuration or usage error (exit status 2)', () => {
    expect(s.get('Restart')).toBe('on-failure');
    expect(s.get('RestartPreventExitStatus')).toBe('2');
  });

  it('passes systemd-analyze verify', (ctx) => {
    needTool(ctx, '/usr/bin/systemd-analyze', 'systemd');
    const r = spawnSync('/usr/bin/systemd-analyze', ['verify', UNIT], { encoding: 'utf8' });
    expect(`${r.stdout}${r.stderr}`).toBe('');
    expect(r.status).toBe(0);
  });
});
