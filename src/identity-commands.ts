/**
 * The administrator's commands for identities, run on the gateway's machine against its database (also while it
 * runs: revocations reach open connections within seconds):
 *   scanline user add NAME --role ROLE [--no-password]   password from standard input (asked twice on a terminal)
 *   scanline user passwd NAME | disable NAME | enable NAME | role NAME ROLE | list [--json]
 *   scanline token create --user NAME [--label L] [--expires 90d]   prints the token once
 *   scanline token list [--user NAME] [--json] | revoke ID
 *   scanline portal add PORTAL_ID... [--json]   prints each portal's credential once (again: a new one)
 *   scanline portal list [--json] | revoke PORTAL_ID
 *   scanline audit [--limit N] [--action A] [--json]
 * Each takes --data-dir DIR and --config FILE (else the configuration's storage.dataDir, as serve). Every change is
 * audited with the actor `cli:<operating system user>`.
 */
import { userInfo } from 'node:os';
import { join, resolve } from 'node:path';
import { type Command, intOption, parseCommandLine, usageError } from './cli-support.js';
import { loadConfig, type GatewayConfig, type GatewayConfigInput } from './config/index.js';
import { ScanlineError } from './errors/index.js';
import { type Actor, IdentityService, MAX_TOKEN_DAYS, ROLE_DESCRIPTIONS, ROLES } from './identity/index.js';
import { silentLogger } from './log/index.js';
import { IdentityStore } from './storage/index.js';

export const WHERE = `  --data-dir DIR    the gateway's data directory (default: storage.dataDir of the configuration, ./data)
  --config FILE     the gateway's configuration file (JSON or YAML)`;

const USER_USAGE = `scanline user <add|passwd|disable|enable|role|list> ...
  People and programs that may use the gateway, and their roles:
${ROLES.map((r) => `    ${r.padEnd(11)} ${ROLE_DESCRIPTIONS[r]}`).join('\n')}
  user add NAME --role ROLE [--no-password]
                    a new account; its password is read from standard input (asked twice on a terminal).
                    --no-password: an account for a program, which acts only with API tokens (scanline token)
  user passwd NAME  a new password (standard input); the account's sessions end
  user disable NAME / user enable NAME
                    a disabled account cannot sign in; its sessions end and its tokens stop working
  user role NAME ROLE
                    a new role; the account's sessions end
  user list [--json]
${WHERE}
`;

const TOKEN_USAGE = `scanline token <create|list|revoke> ...
  API tokens for programs (Authorization: Bearer TOKEN), e.g. Prometheus with an account of role metrics:
  token create --user NAME [--label L] [--expires Nd]
                    prints a new token once (only its hash is kept); --expires 1d..${MAX_TOKEN_DAYS}d (default: never)
  token list [--user NAME] [--json]
  token revoke ID   the token stops working at once
${WHERE}
`;

const PORTAL_USAGE = `scanline portal <add|list|revoke> ...
  Portal identities: a portal's hello must carry its own credential.
  portal add PORTAL_ID... [--json]
                    prints each portal's credential once (only its hash is kept); adding an existing portal gives it
                    a new credential and the old one stops working (its connection is closed)
  portal list [--json]
  portal revoke PORTAL_ID
                    the portal is refused from now on; its open connection is closed within seconds
${WHERE}
`;

const AUDIT_USAGE = `scanline audit [--limit N] [--action A] [--json]
  The audit trail, newest first: sign-ins, decisions, reference changes, account, token and portal changes, sealed
  scans, gateway starts.
  --limit N         most events (1..10000, default 50)
  --action A        only this action, e.g. decision.record or session.login
scanline audit verify [--json]
  Checks the hash chain of the audit trail, every decision against its seal and every sealed scan's raw lines; names
  each entry, decision or scan that was edited, removed or reordered, and prints the chain's head (keep it outside
  the gateway: it makes removing the newest entries evident). Exit status 1 when anything does not hold.
${WHERE}
`;

export const COMMON_OPTIONS = { 'data-dir': { type: 'string' }, config: { type: 'string' } } as const;

export function configOf(values: Record<string, unknown>): GatewayConfig {
  const flags: GatewayConfigInput = {};
  if (typeof values['data-dir'] === 'string') flags.storage = { dataDir: values['data-dir'] };
  return loadConfig({ ...(typeof values.config === 'string' ? { file: values.config } : {}), env: process.env, layers: [flags] });
}

/** Runs `work` with the identity service of the configured data directory, closed afterwards. */
async function withIdentity<T>(values: Record<string, unknown>, work: (identity: IdentityService, by: Actor) => Promise<T> | T): Promise<T> {
  const config = configOf(values);
  const store = IdentityStore.open(config.storage.dataDir);
  try {
    return await work(new IdentityService({ store, config: config.auth, log: silentLogger() }), { name: `cli:${operatorName()}`, address: null });
  } finally {
    store.close();
  }
}

export function operatorName(): string {
  try {
    return userInfo().username;
  } catch {
    return String(process.getuid?.() ?? 'unknown');
  }
}

export function print(text: string): void {
  process.stdout.write(`${text}\n`);
}

/** A table of rows, columns padded to their widest value. */
export function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  return [header, ...rows]
    .map((r) =>
      r
        .map((c, i) => c.padEnd(widths[i]))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

/**
 * A password from standard input: on a terminal it is asked twice without echo; otherwise the first line is read
 * (`printf '%s\n' "$PW" | scanline user add ...`).
 */
async function readPassword(prompt: string): Promise<string> {
  const stdin = process.stdin;
  if (!stdin.isTTY) {
    const chunks: Buffer[] = [];
    for await (const c of stdin) {
      chunks.push(c as Buffer);
      if (Buffer.concat(chunks).includes(10)) break;
    }
    const line = Buffer.concat(chunks).toString('utf8').split(/\r?\n/)[0];
    if (line === '') throw new ScanlineError('SCANLINE_ERR_ACCOUNT_INVALID', 'no password on standard input');
    return line;
  }
  const ask = (label: string): Promise<string> =>
    new Promise((resolve, reject) => {
      process.stderr.write(label);
      let typed = '';
      stdin.setRawMode(true);
      stdin.resume();
      const onData = (data: Buffer): void => {
        for (const ch of data.toString('utf8')) {
          if (ch === '\r' || ch === '\n') {
            done();
            resolve(typed);
            return;
          }
          if (ch === '\u0003') {
            done();
            reject(usageError('cancelled'));
            return;
          }
          if (ch === '\u007f' || ch === '\b') typed = typed.slice(0, -1);
          else typed += ch;
        }
      };
      const done = (): void => {
        stdin.off('data', onData);
        stdin.setRawMode(false);
        stdin.pause();
        process.stderr.write('\n');
      };
      stdin.on('data', onData);
    });
  const first = await ask(prompt);
  const again = await ask('Again: ');
  if (first !== again) throw new ScanlineError('SCANLINE_ERR_ACCOUNT_INVALID', 'the two passwords differ');
  return first;
}

async function user(args: string[]): Promise<void> {
  const [action, ...rest] = args;
  switch (action) {
    case 'add': {
      const { values, positionals } = parseCommandLine(
        rest,
        { ...COMMON_OPTIONS, role: { type: 'string' }, 'no-password': { type: 'boolean' } },
        { min: 1, max: 1, what: 'one account name' },
      );
      if (typeof values.role !== 'string') throw usageError(`--role is required (${ROLES.join(', ')})`);
      const role = values.role;
      const noPassword = values['no-password'] === true;
      const password = noPassword ? null : await readPassword(`Password for ${positionals[0]}: `);
      await withIdentity(values, (identity, by) =>
        password === null ? identity.addProgramAccount(positionals[0], role, by) : identity.addAccount(positionals[0], role, password, by),
      );
      print(`account ${positionals[0]} added with role ${role}${noPassword ? ' (no password: give it a token with scanline token create)' : ''}`);
      return;
    }
    case 'passwd': {
      const { values, positionals } = parseCommandLine(rest, COMMON_OPTIONS, { min: 1, max: 1, what: 'one account name' });
      const password = await readPassword(`New password for ${positionals[0]}: `);
      await withIdentity(values, (identity, by) => identity.setPassword(positionals[0], password, by));
      print(`password of ${positionals[0]} changed; its sessions ended`);
      return;
    }
    case 'disable':
    case 'enable': {
      const { values, positionals } = parseCommandLine(rest, COMMON_OPTIONS, { min: 1, max: 1, what: 'one account name' });
      await withIdentity(values, (identity, by) => identity.setDisabled(positionals[0], action === 'disable', by));
      print(`account ${positionals[0]} ${action}d`);
      return;
    }
    case 'role': {
      const { values, positionals } = parseCommandLine(rest, COMMON_OPTIONS, { min: 2, max: 2, what: 'an account name and a role' });
      await withIdentity(values, (identity, by) => identity.setRole(positionals[0], positionals[1], by));
      print(`account ${positionals[0]} now has role ${positionals[1]}; its sessions ended`);
      return;
    }
    case 'list': {
      const { values } = parseCommandLine(rest, { ...COMMON_OPTIONS, json: { type: 'boolean' } }, { min: 0, max: 0, what: 'no arguments' });
      const accounts = await withIdentity(values, (identity) => identity.listAccounts());
      if (values.json === true) print(JSON.stringify(accounts));
      else
        print(
          table(
            ['NAME', 'ROLE', 'STATE', 'SIGN-IN', 'CREATED'],
            accounts.map((a) => [
              a.name,
              a.role,
              a.disabled ? 'disabled' : 'enabled',
              a.password ? 'password' : a.source === 'oidc' ? 'oidc' : 'tokens only',
              a.createdAt,
            ]),
          ),
        );
      return;
    }
    default:
      throw usageError(`Expected add, passwd, disable, enable, role or list after user but received ${JSON.stringify(action ?? '')}`);
  }
}

/** `90d` → 90 (days). */
function daysOption(value: string): number {
  const m = /^(\d+)d$/.exec(value);
  const days = m ? Number(m[1]) : Number.NaN;
  if (!Number.isInteger(days) || days < 1 || days > MAX_TOKEN_DAYS)
    throw usageError(`Expected 1d..${MAX_TOKEN_DAYS}d for --expires but received ${JSON.stringify(value)}`);
  return days;
}

async function token(args: string[]): Promise<void> {
  const [action, ...rest] = args;
  switch (action) {
    case 'create': {
      const { values } = parseCommandLine(
        rest,
        { ...COMMON_OPTIONS, user: { type: 'string' }, label: { type: 'string' }, expires: { type: 'string' } },
        { min: 0, max: 0, what: 'no arguments besides the options' },
      );
      if (typeof values.user !== 'string') throw usageError('--user is required');
      const account = values.user;
      const expiresInDays = typeof values.expires === 'string' ? daysOption(values.expires) : undefined;
      const label = typeof values.label === 'string' ? values.label : undefined;
      const created = await withIdentity(values, (identity, by) =>
        identity.createToken(account, { ...(label !== undefined ? { label } : {}), ...(expiresInDays !== undefined ? { expiresInDays } : {}) }, by),
      );
      process.stderr.write(
        `token ${created.record.id} for ${account}${created.record.expiresAt ? `, expires ${created.record.expiresAt}` : ''}; shown once:\n`,
      );
      print(created.token);
      return;
    }
    case 'list': {
      const { values } = parseCommandLine(
        rest,
        { ...COMMON_OPTIONS, user: { type: 'string' }, json: { type: 'boolean' } },
        { min: 0, max: 0, what: 'no arguments' },
      );
      const tokens = await withIdentity(values, (identity) => identity.listTokens(typeof values.user === 'string' ? values.user : undefined));
      if (values.json === true) print(JSON.stringify(tokens));
      else
        print(
          table(
            ['ID', 'ACCOUNT', 'LABEL', 'STATE', 'EXPIRES', 'LAST USED'],
            tokens.map((t) => [
              t.id,
              t.account,
              t.label ?? '',
              t.revokedAt ? 'revoked' : t.expiresAt && Date.parse(t.expiresAt) <= Date.now() ? 'expired' : 'active',
              t.expiresAt ?? 'never',
              t.lastUsedAt ?? 'never',
            ]),
          ),
        );
      return;
    }
    case 'revoke': {
      const { values, positionals } = parseCommandLine(rest, COMMON_OPTIONS, { min: 1, max: 1, what: 'one token id (scanline token list)' });
      await withIdentity(values, (identity, by) => identity.revokeToken(positionals[0], by));
      print(`token ${positionals[0]} revoked`);
      return;
    }
    default:
      throw usageError(`Expected create, list or revoke after token but received ${JSON.stringify(action ?? '')}`);
  }
}

async function portal(args: string[]): Promise<void> {
  const [action, ...rest] = args;
  switch (action) {
    case 'add': {
      const { values, positionals } = parseCommandLine(
        rest,
        { ...COMMON_OPTIONS, json: { type: 'boolean' } },
        { min: 1, max: 1024, what: 'one or more portal ids' },
      );
      const made = await withIdentity(values, (identity, by) => positionals.map((id) => [id, identity.setPortalCredential(id, by).credential] as const));
      if (values.json === true) print(JSON.stringify(Object.fromEntries(made)));
      else {
        process.stderr.write('portal credentials, shown once (the portal sends its own in hello.token):\n');
        print(made.map(([id, c]) => `${id} ${c}`).join('\n'));
      }
      return;
    }
    case 'list': {
      const { values } = parseCommandLine(rest, { ...COMMON_OPTIONS, json: { type: 'boolean' } }, { min: 0, max: 0, what: 'no arguments' });
      const portals = await withIdentity(values, (identity) => identity.listPortals());
      if (values.json === true) print(JSON.stringify(portals));
      else
        print(
          table(
            ['PORTAL', 'STATE', 'CREDENTIAL SET', 'CREATED'],
            portals.map((p) => [p.portalId, p.revokedAt ? 'revoked' : 'active', p.updatedAt, p.createdAt]),
          ),
        );
      return;
    }
    case 'revoke': {
      const { values, positionals } = parseCommandLine(rest, COMMON_OPTIONS, { min: 1, max: 1, what: 'one portal id' });
      await withIdentity(values, (identity, by) => identity.revokePortal(positionals[0], by));
      print(`portal ${positionals[0]} revoked; a running gateway closes its connection within seconds`);
      return;
    }
    default:
      throw usageError(`Expected add, list or revoke after portal but received ${JSON.stringify(action ?? '')}`);
  }
}

async function verify(args: string[]): Promise<void> {
  const { values } = parseCommandLine(args, { ...COMMON_OPTIONS, json: { type: 'boolean' } }, { min: 0, max: 0, what: 'no arguments' });
  const config = configOf(values);
  const report = await withIdentity(values, (identity) => identity.verify(join(resolve(config.storage.dataDir), 'scans')));
  if (values.json === true) print(JSON.stringify(report));
  else {
    print(
      `audit chain: ${report.entries} entries${report.unsealed ? ` (+${report.unsealed} from before the chain, unsealed)` : ''}, ` +
        `${report.decisionsChecked} decisions, ${report.scansChecked} sealed scans checked`,
    );
    print(report.head ? `head: entry ${report.head.id} ${report.head.hash}` : 'head: none (no entry yet)');
    for (const p of report.problems) print(`PROBLEM: ${p}`);
    print(report.problems.length === 0 ? 'everything holds' : `${report.problems.length} problems`);
  }
  if (report.problems.length > 0) {
    throw new ScanlineError('SCANLINE_ERR_AUDIT_TAMPERED', `${report.problems.length} entries, decisions or scans do not hold (listed above)`, {
      problems: report.problems,
    });
  }
}

async function audit(args: string[]): Promise<void> {
  if (args[0] === 'verify') return verify(args.slice(1));
  const { values } = parseCommandLine(
    args,
    { ...COMMON_OPTIONS, limit: { type: 'string' }, action: { type: 'string' }, json: { type: 'boolean' } },
    { min: 0, max: 0, what: 'no arguments besides the options' },
  );
  const limit = intOption(values, 'limit', 50, 1, 10_000);
  const action = typeof values.action === 'string' ? values.action : undefined;
  const events = await withIdentity(values, (identity) => identity.listAudit({ limit, ...(action !== undefined ? { action } : {}) }));
  if (values.json === true) print(JSON.stringify(events));
  else
    print(
      table(
        ['ID', 'AT', 'ACTOR', 'ACTION', 'TARGET', 'OUTCOME', 'ADDRESS', 'DETAILS'],
        events.map((e) => [String(e.id), e.at, e.actor, e.action, e.target ?? '', e.outcome, e.address ?? '', JSON.stringify(e.details)]),
      ),
    );
}

/** user, token, portal and audit, in the order `scanline help` lists them. */
export function identityCommands(): Command[] {
  return [
    { name: 'user', summary: 'add, change, disable and list accounts', usage: USER_USAGE, run: user },
    { name: 'token', summary: 'create, list and revoke API tokens', usage: TOKEN_USAGE, run: token },
    { name: 'portal', summary: 'add, list and revoke portal credentials', usage: PORTAL_USAGE, run: portal },
    { name: 'audit', summary: 'show or verify the audit trail', usage: AUDIT_USAGE, run: audit },
  ];
}
