// What overflows a netlink request socket: N requests sent at once (as a burst of HTTP requests would with no cap),
// for several receive buffer sizes. Each reply is queued by the kernel while the request is sent, before the event
// loop reads any, so N replies must fit the buffer; the kernel drops the rest and flags the socket (ENOBUFS).
// Needs the patched binding (the prebuilt one aborts on the first ENOBUFS) and root, in a private namespace:
//
//   bash test/in-netns.sh node test/bench/netlink-overflow.mjs
//
// Prints one line per (buffer, N, request kind): answered, timed out, ENOBUFS events. Replies are those of a macvlan
// (getLink, the largest the plugin asks for one at a time) and acks (setLink).
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createRtNetlink } from 'netlink';

const TIMEOUT_MS = 2000;
const BUFFERS = [0, 16384, 65536, 212992]; // 0: the socket's default
const COUNTS = [8, 16, 32, 64, 128, 256, 512];

if (!process.env.TSMV_OUTER_NETNS) throw new Error('run me in a private namespace: bash test/in-netns.sh node ...');
const ip = (...args) => execFileSync('ip', args);
ip('link', 'add', 'tmvNd0', 'type', 'veth', 'peer', 'name', 'tmvNd1');
ip('link', 'add', 'tmvNm0', 'link', 'tmvNd0', 'type', 'macvlan', 'mode', 'bridge');

async function burst(bufferSize, count, kind) {
  const socket = createRtNetlink();
  if (bufferSize) socket.socket.setRecvBufferSize(bufferSize);
  let enobufs = 0;
  socket.socket.on('error', (err) => {
    if (err.code === 'ENOBUFS') enobufs++;
    else throw err;
  });
  const request = () =>
    kind === 'getLink'
      ? socket.getLink({}, { ifname: 'tmvNm0' }, { timeout: TIMEOUT_MS })
      : socket.setLink({}, { ifname: 'tmvNm0', ifalias: 'tmvN' }, { timeout: TIMEOUT_MS });
  const results = await Promise.allSettled(Array.from({ length: count }, request));
  const effective = socket.socket.getRecvBufferSize();
  socket.socket.close();
  const answered = results.filter((r) => r.status === 'fulfilled').length;
  const timedOut = results.filter((r) => r.status === 'rejected' && /Timeout/.test(r.reason.message)).length;
  return { effective, answered, timedOut, other: count - answered - timedOut, enobufs };
}

const rmemMax = readFileSync('/proc/sys/net/core/rmem_max', 'utf8').trim();
console.log(`net.core.rmem_max ${rmemMax}; timeout ${TIMEOUT_MS} ms per request`);
console.log('asked SO_RCVBUF | effective | kind    |   N | answered | timed out | other | ENOBUFS events');
for (const bufferSize of BUFFERS) {
  for (const kind of ['getLink', 'setLink']) {
    for (const count of COUNTS) {
      const r = await burst(bufferSize, count, kind);
      console.log(
        [
          String(bufferSize || 'default').padStart(15),
          String(r.effective).padStart(9),
          kind.padEnd(7),
          String(count).padStart(3),
          String(r.answered).padStart(8),
          String(r.timedOut).padStart(9),
          String(r.other).padStart(5),
          String(r.enobufs).padStart(4),
        ].join(' | '),
      );
    }
  }
}
