// Set-up file of the vm project: these tests load kernel modules and make links freely, which only the throwaway VM
// of test/vm/vmrun.sh may see. Its guest sets VMRUN_GUEST=1 and has no network device but loopback.
import { readdirSync } from 'node:fs';

const HOW = 'run the vm suite under the VM: bash test/vm/vmrun.sh node_modules/.bin/vitest run --project vm';
if (process.env.VMRUN_GUEST !== '1') throw new Error(`not inside the test VM (VMRUN_GUEST is not 1): ${HOW}`);
const devices = readdirSync('/sys/class/net').filter((d) => d !== 'lo');
if (devices.length)
  throw new Error(`this machine has network devices (${devices.join(', ')}), the VM has none: ${HOW}`);
