import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, normalize, relative } from 'node:path';
import { describe, expect, it } from 'vitest';

// The folders of src/ by layer: a module may import its own folder and any folder of a lower layer, nothing above.
// The kernel layer knows nothing of Docker or of the state; Docker's wire conventions (api/) are known only on top.
// ip/ is the address maths (pure, imports nothing); cluster/ is a store like state/, below the IPAM that calls it.
// stats/ holds plain counting (durations into buckets) that any layer keeps; metrics/ exports what the layers keep to
// Prometheus, above them all but the cli that starts it: no layer below imports it.
const LAYERS: Record<string, number> = {
  ip: 0,
  stats: 0,
  kernel: 0,
  state: 1,
  'errors.ts': 1,
  'version.ts': 0,
  cluster: 1.5,
  // The DHCP client is a protocol engine over the kernel's packet socket, used by the driver: below it.
  dhcp: 1,
  // The address probes too (ARP, neighbour solicitation), shared by the IPAM and the driver: below both.
  probe: 1,
  // IPv6 router advertisements (SLAAC prefixes), heard on the packet socket for the driver: below it.
  ra: 1,
  // The DHCPv6 client: above ra (it forms link-local addresses as SLAAC does), below the driver.
  dhcp6: 1.25,
  ipam: 2,
  driver: 2,
  api: 3,
  inspect: 3,
  metrics: 3.5,
  cli: 4,
};

const SRC = join(__dirname, '../../src');

/** The folder (or top-level file) of src/ that a path inside src/ belongs to. */
function placeOf(pathInSrc: string): string {
  const [first, ...rest] = pathInSrc.split('/');
  return rest.length ? first : `${first.replace(/\.ts$/, '')}.ts`;
}

/** Every relative import of a module, as a path inside src/ without extension. */
function importsOf(pathInSrc: string, text: string): string[] {
  const specs = [...text.matchAll(/(?:from |import\(|require\()'(\.\.?\/[^']+)'/g)].map((m) => m[1]);
  return specs.map((spec) => normalize(join(dirname(pathInSrc), spec)));
}

/** What breaks the layering in a set of modules (path inside src/ → source text), one sentence each. */
function layerViolations(modules: Map<string, string>): string[] {
  const found: string[] = [];
  for (const [path, text] of modules) {
    const from = placeOf(path);
    if (!(from in LAYERS)) {
      found.push(`src/${path}: folder '${from}' has no layer; add it to LAYERS in ${relative(SRC, __filename)}`);
      continue;
    }
    for (const target of importsOf(path, text)) {
      const to = placeOf(target);
      if (to === from) continue;
      if (!(to in LAYERS) || LAYERS[to] >= LAYERS[from])
        found.push(`src/${path} (${from}) imports src/${target} (${to}): only lower layers may be imported`);
    }
  }
  return found;
}

function readSrc(dir = SRC, modules = new Map<string, string>()): Map<string, string> {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) readSrc(path, modules);
    else if (entry.name.endsWith('.ts')) modules.set(relative(SRC, path), readFileSync(path, 'utf8'));
  }
  return modules;
}

describe('the layers of src/', () => {
  it('import only downwards: kernel/ and state/ nothing above them, api/ only from cli/', () => {
    const modules = readSrc();
    expect(modules.size).toBeGreaterThan(20);
    expect(layerViolations(modules)).toEqual([]);
  });

  it('are checked: an upward or sideways import is reported', () => {
    const modules = new Map([
      ['kernel/links.ts', "import { crashPoint } from '../state/crash';"],
      ['state/record-store.ts', "import type { NetworkRecord } from '../driver/network-options';"],
      ['driver/driver.ts', "import { buildServer } from '../api/server';\nimport { Links } from '../kernel/links';"],
      ['ipam/service.ts', "import { PluginError } from '../errors';\nimport { x } from '../driver/parents';"],
      ['mystery/thing.ts', ''],
    ]);
    expect(layerViolations(modules)).toEqual([
      'src/kernel/links.ts (kernel) imports src/state/crash (state): only lower layers may be imported',
      'src/state/record-store.ts (state) imports src/driver/network-options (driver): only lower layers may be imported',
      'src/driver/driver.ts (driver) imports src/api/server (api): only lower layers may be imported',
      'src/ipam/service.ts (ipam) imports src/driver/parents (driver): only lower layers may be imported',
      "src/mystery/thing.ts: folder 'mystery' has no layer; add it to LAYERS in ../test/unit/layers.test.ts",
    ]);
  });
});
