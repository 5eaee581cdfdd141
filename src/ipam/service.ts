// STUB: replaced by the IPAM implementation.
import type { Logger } from 'pino';
export class IpamService {
  constructor(_stateDir: string, _log: Logger) {}
}
