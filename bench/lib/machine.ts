/**
 * What the bench ran on, and per-thread CPU accounting of this process (Linux /proc; zeros elsewhere).
 * Benchmarks record the machine next to every result: absolute numbers mean little without it.
 */
import { spawnSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, readdirSync, rmSync, writeSync } from 'node:fs';
import { availableParallelism, cpus, release, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';

export interface MachineInfo {
  cpus: number;
  cpuModel: string;
  /** cgroup v2 CPU quota ("max" = none), when readable. */
  cgroupCpuMax: string | null;
  ramGiB: number;
  node: string;
  os: string;
  /** Filesystem type of os.tmpdir(), where the gateway's data directory (SQLite + raw lines) lives. */
  tmpFs: string;
}

function readOr(path: string, fallback: string | null): string | null {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return fallback;
  }
}

export function machineInfo(): MachineInfo {
  const cpuinfo = readOr('/proc/cpuinfo', '') ?? '';
  const model = /^model name\s*:\s*(.+)$/m.exec(cpuinfo)?.[1]?.trim() ?? cpus()[0]?.model ?? 'unknown';
  const osRelease = readOr('/etc/os-release', '') ?? '';
  const pretty = /^PRETTY_NAME="?([^"\n]+)"?$/m.exec(osRelease)?.[1] ?? process.platform;
  const fs = spawnSync('stat', ['-f', '-c', '%T', tmpdir()], { encoding: 'utf8' });
  return {
    cpus: availableParallelism(),
    cpuModel: model,
    cgroupCpuMax: readOr('/sys/fs/cgroup/cpu.max', null)?.trim() ?? null,
    ramGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    node: process.version,
    os: `${pretty} (kernel ${release()}, ${process.arch})`,
    tmpFs: fs.status === 0 ? fs.stdout.trim() : 'unknown',
  };
}

const CLK_TCK = (() => {
  const r = spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' });
  const n = Number(r.stdout?.trim());
  return Number.isFinite(n) && n > 0 ? n : 100;
})();

/** CPU seconds (user + system) per thread name of this process; 'main' is the JS thread. Clock-tick resolution. */
export type ThreadCpu = Map<string, number>;

export function threadCpu(): ThreadCpu {
  const out: ThreadCpu = new Map();
  let tids: string[];
  try {
    tids = readdirSync('/proc/self/task');
  } catch {
    return out;
  }
  for (const tid of tids) {
    const stat = readOr(`/proc/self/task/${tid}/stat`, null);
    if (!stat) continue; // the thread ended meanwhile
    const close = stat.lastIndexOf(')');
    const name = Number(tid) === process.pid ? 'main' : stat.slice(stat.indexOf('(') + 1, close);
    const fields = stat.slice(close + 2).split(' ');
    // Fields after "(comm) ": [0] state ... [11] utime [12] stime, in clock ticks.
    const seconds = (Number(fields[11]) + Number(fields[12])) / CLK_TCK;
    out.set(name, (out.get(name) ?? 0) + seconds);
  }
  return out;
}

/** Per-name CPU over an interval, % of one core. */
export function threadCpuPercent(before: ThreadCpu, after: ThreadCpu, seconds: number): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [name, s] of after) {
    const pct = ((s - (before.get(name) ?? 0)) / seconds) * 100;
    if (pct >= 0.5) out[name] = Math.round(pct * 10) / 10;
  }
  return out;
}

/** Nanoseconds the JS thread has run on a CPU and waited in the run queue for one (/proc schedstat). */
export interface SchedStat {
  runNs: number;
  waitNs: number;
}

export function mainThreadSchedStat(): SchedStat | null {
  const text = readOr(`/proc/self/task/${process.pid}/schedstat`, null);
  if (!text) return null;
  const [run, wait] = text.trim().split(/\s+/).map(Number);
  return { runNs: run, waitNs: wait };
}

/** Jiffies of the whole machine from /proc/stat's first line (all CPUs). */
export interface MachineCpu {
  busy: number;
  total: number;
  steal: number;
}

export function machineCpu(): MachineCpu | null {
  const text = readOr('/proc/stat', null);
  if (!text) return null;
  const f = text.split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal (guest time is already inside user/nice)
  const [user, nice, system, idle, iowait, irq, softirq, steal] = f;
  const busy = user + nice + system + irq + softirq + steal;
  return { busy, total: busy + idle + iowait, steal };
}

/** Machine CPU busy over an interval, % of all CPUs (100 = every CPU busy), and the steal part of it. */
export function machineCpuPercent(a: MachineCpu | null, b: MachineCpu | null): { busy: number; steal: number } | null {
  if (!a || !b || b.total === a.total) return null;
  const t = b.total - a.total;
  return { busy: ((b.busy - a.busy) / t) * 100, steal: ((b.steal - a.steal) / t) * 100 };
}

export interface DiskWriteProbe {
  dir: string;
  megabytes: number;
  mbPerS: number;
  /** CPU (user + system) this process spent per MB written. */
  cpuMsPerMb: number;
}

/**
 * Cost of buffered sequential writes into a new file under `parent` (what the raw archive does): `megabytes` MB in
 * 4 MB writes, without fsync. Synchronous; takes about a second on a typical disk.
 */
export function probeDiskWrites(parent: string, megabytes = 512): DiskWriteProbe {
  const dir = mkdtempSync(join(parent, 'scanline-bench-disk-'));
  const chunk = Buffer.alloc(4 * 1024 * 1024, 0x5a);
  try {
    const fd = openSync(join(dir, 'probe.bin'), 'w');
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    let written = 0;
    while (written < megabytes * 1e6) written += writeSync(fd, chunk, 0, chunk.byteLength, written);
    const seconds = (performance.now() - t0) / 1000;
    const cpu = process.cpuUsage(cpu0);
    closeSync(fd);
    return { dir: parent, megabytes: written / 1e6, mbPerS: written / 1e6 / seconds, cpuMsPerMb: (cpu.user + cpu.system) / 1000 / (written / 1e6) };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** CPU ticks of every process on the machine, by pid (Linux /proc; empty elsewhere). */
export type ProcessCpu = Map<number, { ticks: number; kernel: boolean; name: string }>;

export function processCpu(): ProcessCpu {
  const out: ProcessCpu = new Map();
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return out;
  }
  for (const entry of entries) {
    const pid = Number(entry);
    if (!Number.isInteger(pid)) continue;
    const stat = readOr(`/proc/${pid}/stat`, null);
    if (!stat) continue;
    const close = stat.lastIndexOf(')');
    const fields = stat.slice(close + 2).split(' ');
    // [1] ppid; kernel threads are kthreadd (pid 2) and its children.
    const ppid = Number(fields[1]);
    out.set(pid, {
      ticks: Number(fields[11]) + Number(fields[12]),
      kernel: pid === 2 || ppid === 2,
      name: stat.slice(stat.indexOf('(') + 1, close),
    });
  }
  return out;
}

export interface OtherLoad {
  /** User-space processes other than the excluded ones (the bench's own), % of one core. */
  processesPercent: number;
  /** Kernel threads (writeback, softirq, reclaim...), % of one core; partly work done for the gateway. */
  kernelPercent: number;
  /** The busiest other processes, with their command lines. */
  top: Array<{ pid: number; percent: number; command: string }>;
}

/** CPU used over an interval by everything except `exclude`; processes that ended meanwhile are not seen. */
export function otherLoad(before: ProcessCpu, after: ProcessCpu, exclude: ReadonlySet<number>, seconds: number): OtherLoad {
  let processes = 0;
  let kernel = 0;
  const top: OtherLoad['top'] = [];
  for (const [pid, a] of after) {
    if (exclude.has(pid)) continue;
    const percent = ((a.ticks - (before.get(pid)?.ticks ?? 0)) / CLK_TCK / seconds) * 100;
    if (percent <= 0) continue;
    if (a.kernel) kernel += percent;
    else {
      processes += percent;
      if (percent >= 5) {
        const cmd = (readOr(`/proc/${pid}/cmdline`, null) ?? a.name).split('\0').join(' ').trim() || a.name;
        top.push({ pid, percent: Math.round(percent), command: cmd.length > 120 ? `${cmd.slice(0, 117)}...` : cmd });
      }
    }
  }
  top.sort((x, y) => y.percent - x.percent);
  return { processesPercent: processes, kernelPercent: kernel, top: top.slice(0, 5) };
}

/**
 * Waits until the whole machine has been below `maxBusyPercent` busy for `sampleMs`, for at most `timeoutMs`.
 * Resolves with the last sample's busy % (so a caller can say it gave up waiting).
 */
export async function waitForQuiet(maxBusyPercent = 15, sampleMs = 2_000, timeoutMs = 90_000): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  let busy = 100;
  for (;;) {
    const a = machineCpu();
    await new Promise((resolve) => setTimeout(resolve, sampleMs));
    busy = machineCpuPercent(a, machineCpu())?.busy ?? 0;
    if (busy < maxBusyPercent || Date.now() >= deadline) return busy;
  }
}
