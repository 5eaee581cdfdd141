// Links inside another network namespace, reached without entering it (setns would need CAP_SYS_ADMIN): the
// namespace has an id in ours (RTM_NEWNSID), and requests name that id (IFLA_TARGET_NETNSID). The kernel honours
// it for RTM_GETLINK and RTM_DELLINK only: RTM_SETLINK and RTM_NEWLINK look the link up in the socket's own namespace
// (ENODEV here, kernel 6.18) and read the attribute as "move the link there", so a link cannot be taken down, only deleted.
// The id comes from the namespace's file when it can be opened, or from the move itself: a link moved out of our
// namespace gives its new one an id in ours (the kernel assigns it at the move), so a process that cannot see the
// file (a managed plugin: Docker's netns files are not in its mount namespace) still finds the link.
// Address dumps (RTM_GETADDR) honour the id only on a socket with NETLINK_GET_STRICT_CHK, which the binding cannot set
// (they answer our own namespace's addresses instead), so a link there is found by MAC or index, never by address.
import { closeSync, openSync } from 'node:fs';
import { createRtNetlink, FlagsGet, ifla, type RtNetlinkSocket } from 'netlink';
import type { LinkMessage } from 'netlink/dist/rt/structs';
import { attr, bufferToMac, u32 } from './attributes';
import { errnoOf, KernelError } from './errors';
import type { ChildKind } from './link-info';
import { withTimeout } from './request-timeout';

const RTM_NEWNSID = 88;
const RTM_GETNSID = 90;
const NETNSA_NSID = 1;
const NETNSA_FD = 3;
const NETNSA_NSID_NOT_ASSIGNED = -1; // in RTM_NEWNSID: let the kernel choose
const REQUEST_TIMEOUT_MS = 5000;

/**
 * Which link of another namespace: a macvlan by its MAC (unique on its parent: the kernel refuses a second), an
 * ipvlan by its index (its MAC is its parent's, shared by every sibling; a link keeps its index when it is moved,
 * unless the namespace it goes to has a link by that index already).
 */
export type ForeignLink = { mac: string } | { index: number; kind: ChildKind };

function kindOf(link: LinkMessage): string | undefined {
  return link.attrs.linkinfo && ifla.parseInfo(link.attrs.linkinfo).kind;
}

function matches(link: LinkMessage, which: ForeignLink): boolean {
  if ('mac' in which) return link.attrs.address !== undefined && bufferToMac(link.attrs.address) === which.mac;
  return link.data.index === which.index && kindOf(link) === which.kind;
}

function describe(which: ForeignLink): string {
  return 'mac' in which ? which.mac : `link ${which.index}`;
}

/** Deletes the interface `which` in the namespace at `namespacePath`; false when no such interface is there. */
export async function deleteInNamespace(namespacePath: string, which: ForeignLink): Promise<boolean> {
  const fd = openSync(namespacePath, 'r');
  try {
    const socket = createRtNetlink();
    socket.socket.on('error', () => undefined); // an error without a listener would be thrown; requests fail instead
    try {
      const nsid = await namespaceId(socket, fd);
      const links = await withTimeout(socket.getLinks({}, { targetNetnsid: nsid }), REQUEST_TIMEOUT_MS);
      const link = links.find((l) => matches(l, which));
      if (!link) return false;
      await withTimeout(socket.delLink({ index: link.data.index }, { targetNetnsid: nsid }), REQUEST_TIMEOUT_MS);
      return true;
    } catch (err) {
      throw new KernelError(`delete ${describe(which)} in ${namespacePath}`, errnoOf(err));
    } finally {
      socket.socket.close();
    }
  } finally {
    closeSync(fd);
  }
}

/**
 * Deletes the child link `which` (a macvlan or ipvlan, see ForeignLink) of our link `parentIndex`, in whichever
 * namespace with an id in ours it was moved to; false when no namespace holds it. Only a link of that kind whose
 * parent is in another namespace counts: a namespace's own link by that MAC or index is never touched.
 */
export async function deleteMovedChild(parentIndex: number, kind: ChildKind, which: ForeignLink): Promise<boolean> {
  const socket = createRtNetlink();
  socket.socket.on('error', () => undefined); // an error without a listener would be thrown; requests fail instead
  try {
    for (const nsid of await namespaceIds(socket)) {
      const links = await withTimeout(socket.getLinks({}, { targetNetnsid: nsid }), REQUEST_TIMEOUT_MS);
      const link = links.find(
        (l) =>
          matches(l, which) &&
          l.attrs.link?.readUInt32LE(0) === parentIndex &&
          l.attrs.linkNetnsid !== undefined && // its parent is in another namespace (not one of the same index there)
          kindOf(l) === kind,
      );
      if (!link) continue;
      await withTimeout(socket.delLink({ index: link.data.index }, { targetNetnsid: nsid }), REQUEST_TIMEOUT_MS);
      return true;
    }
    return false;
  } catch (err) {
    throw new KernelError(
      `delete the ${kind} ${describe(which)} of link ${parentIndex} in another namespace`,
      errnoOf(err),
    );
  } finally {
    socket.socket.close();
  }
}

/** The ids of every namespace ours has one for. */
async function namespaceIds(socket: RtNetlinkSocket): Promise<number[]> {
  const dump = socket.socket.request(RTM_GETNSID, Buffer.alloc(4), { flags: FlagsGet.DUMP });
  const [replies] = await withTimeout(dump, REQUEST_TIMEOUT_MS);
  return replies
    .filter((message) => message.type === RTM_NEWNSID)
    .map((message) => readAttribute(Buffer.from(message.data), 4, NETNSA_NSID)?.readInt32LE(0))
    .filter((nsid): nsid is number => nsid !== undefined && nsid >= 0);
}

/** The id our namespace knows `fd`'s namespace by, assigned now if it has none. */
async function namespaceId(socket: RtNetlinkSocket, fd: number): Promise<number> {
  const nsidRequest = (nsid?: number) =>
    Buffer.concat([
      Buffer.alloc(4), // struct rtgenmsg (family AF_UNSPEC), padded
      ...(nsid === undefined ? [] : [attr(NETNSA_NSID, i32(nsid))]),
      attr(NETNSA_FD, u32(fd)),
    ]);
  try {
    await withTimeout(socket.socket.request(RTM_NEWNSID, nsidRequest(NETNSA_NSID_NOT_ASSIGNED)), REQUEST_TIMEOUT_MS);
  } catch (err) {
    if (errnoOf(err) !== 'EEXIST') throw err; // it has one already
  }
  const [replies] = await withTimeout(socket.socket.request(RTM_GETNSID, nsidRequest()), REQUEST_TIMEOUT_MS);
  const reply = replies.find((message) => message.type === RTM_NEWNSID);
  const nsid = reply && readAttribute(Buffer.from(reply.data), 4, NETNSA_NSID)?.readInt32LE(0);
  if (nsid === undefined || nsid < 0) throw new Error('the kernel gave the namespace no id');
  return nsid;
}

function i32(value: number): Buffer {
  const buf = Buffer.alloc(4);
  buf.writeInt32LE(value);
  return buf;
}

/** The payload of the first attribute of `type` after `offset` bytes of fixed header. */
function readAttribute(message: Buffer, offset: number, type: number): Buffer | undefined {
  for (let at = offset; at + 4 <= message.length;) {
    const length = message.readUInt16LE(at);
    if (length < 4) return undefined;
    if ((message.readUInt16LE(at + 2) & 0x3fff) === type) return message.subarray(at + 4, at + length);
    at += (length + 3) & ~3;
  }
  return undefined;
}
