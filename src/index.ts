/**
 * The package's programmatic entry (`import { startGateway, loadConfig } from 'scanline'`): start a gateway in
 * this process with a configuration resolved the way `scanline serve` resolves it, and recognise its errors by code.
 * Everything else under src/ is internal; the command line is bin/scanline.js.
 */
export {
  DEFAULT_CONFIG,
  type GatewayConfig,
  type GatewayConfigInput,
  type LoadConfigOptions,
  loadConfig,
  printableConfig,
  resolveConfig,
} from './config/index.js';
export { ERROR_CODES, type ErrorCode, isErrorCode, ScanlineError, type ScanlineErrorDetails } from './errors/index.js';
export { createRootLogger, LOG_FORMATS, type Logger, type LogFormat } from './log/index.js';
export { GATEWAY_PHASES, type Gateway, type GatewayOptions, type GatewayPhase, startGateway } from './main.js';
