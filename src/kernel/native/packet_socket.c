// One AF_PACKET socket for the whole host, watched by libuv (uv_poll): readable frames are delivered on the event
// loop, never by a thread of its own and never by a blocking call. A classic BPF filter keeps only ARP, IPv4 UDP to
// ports 67/68 (DHCP), IPv6 UDP to port 546 (DHCPv6 replies to clients) and ICMPv6 neighbour discovery (types
// 133-137), so the socket costs nothing for other traffic.
// Needs CAP_NET_RAW only.
#define _GNU_SOURCE // strerrorname_np
#include <arpa/inet.h>
#include <errno.h>
#include <linux/filter.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <node_api.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#define MAX_FRAME 2048
// Bounded work per wakeup: a flood of frames cannot hold the event loop; the rest wait for the next turn.
#define MAX_FRAMES_PER_WAKEUP 64

typedef struct {
  uv_poll_t poll;
  int fd;
  int closed;
  napi_env env;
  napi_ref on_frame;
  napi_ref self;
  napi_async_context async;
} packet_socket;

static struct sock_filter arp_dhcp_and_nd[] = {
    BPF_STMT(BPF_LD | BPF_H | BPF_ABS, 12),                   // ethertype (jump offsets count from the next instruction)
    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, ETH_P_ARP, 18, 0),    // ARP: accept
    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, ETH_P_IPV6, 9, 0),    // IPv6: to its checks
    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, ETH_P_IP, 0, 17),     // not IPv4: reject
    BPF_STMT(BPF_LD | BPF_B | BPF_ABS, 23),                   // IP protocol
    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, IPPROTO_UDP, 0, 15),  // not UDP: reject
    BPF_STMT(BPF_LD | BPF_H | BPF_ABS, 20),                   // flags + fragment offset
    BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, 0x1fff, 13, 0),      // a later fragment has no UDP header: reject
    BPF_STMT(BPF_LDX | BPF_B | BPF_MSH, 14),                  // X = IP header length
    BPF_STMT(BPF_LD | BPF_H | BPF_IND, 16),                   // UDP destination port
    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 67, 9, 0),
    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 68, 8, 9),
    BPF_STMT(BPF_LD | BPF_B | BPF_ABS, 20),                   // IPv6 next header (no extension headers: ND has none)
    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, IPPROTO_ICMPV6, 0, 3), // not ICMPv6: to the UDP check
    BPF_STMT(BPF_LD | BPF_B | BPF_ABS, 54),                   // ICMPv6 type
    BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, 133, 0, 5),           // below router solicitation: reject
    BPF_JUMP(BPF_JMP | BPF_JGT | BPF_K, 137, 4, 3),           // above redirect: reject; neighbour discovery: accept
    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, IPPROTO_UDP, 0, 3),   // neither ICMPv6 nor UDP: reject
    BPF_STMT(BPF_LD | BPF_H | BPF_ABS, 56),                   // UDP destination port (after the 40-byte IPv6 header)
    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 546, 0, 1),           // DHCPv6 client port: accept
    BPF_STMT(BPF_RET | BPF_K, MAX_FRAME),
    BPF_STMT(BPF_RET | BPF_K, 0),
};

static napi_value throw_errno(napi_env env, const char *what, int err) {
  char message[160];
  snprintf(message, sizeof message, "%s: %s", what, strerror(err));
  const char *code = strerrorname_np(err); // "EPERM": what a caller can test for
  napi_throw_error(env, code ? code : "EUNKNOWN", message);
  return NULL;
}

static void deliver(packet_socket *s, napi_value *argv, size_t argc) {
  napi_env env = s->env;
  napi_value fn, self, result;
  napi_get_reference_value(env, s->on_frame, &fn);
  napi_get_reference_value(env, s->self, &self);
  if (napi_make_callback(env, s->async, self, fn, argc, argv, &result) == napi_pending_exception) {
    napi_value exception;
    napi_get_and_clear_last_exception(env, &exception);
    napi_fatal_exception(env, exception);
  }
}

static void deliver_error(packet_socket *s, const char *what, int err) {
  napi_value argv[1], message;
  char text[160];
  snprintf(text, sizeof text, "%s: %s", what, strerror(err));
  napi_create_string_utf8(s->env, text, NAPI_AUTO_LENGTH, &message);
  napi_create_error(s->env, NULL, message, &argv[0]);
  deliver(s, argv, 1);
}

static void on_readable(uv_poll_t *handle, int status, int events) {
  packet_socket *s = handle->data;
  (void)events;
  if (s->closed) return;
  napi_handle_scope scope;
  napi_open_handle_scope(s->env, &scope);
  if (status < 0) {
    // libuv stops the watcher on an error; read the socket's pending error and watch again.
    int err = 0;
    socklen_t len = sizeof err;
    getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &len);
    deliver_error(s, "packet socket poll", err ? err : -status);
    if (!s->closed) uv_poll_start(&s->poll, UV_READABLE, on_readable);
    napi_close_handle_scope(s->env, scope);
    return;
  }
  unsigned char frame[MAX_FRAME];
  for (int i = 0; i < MAX_FRAMES_PER_WAKEUP && !s->closed; i++) {
    struct sockaddr_ll from;
    socklen_t from_len = sizeof from;
    ssize_t n = recvfrom(s->fd, frame, sizeof frame, MSG_DONTWAIT | MSG_TRUNC, (struct sockaddr *)&from, &from_len);
    if (n < 0) {
      if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) deliver_error(s, "packet socket recvfrom", errno);
      break;
    }
    napi_value argv[4];
    napi_get_null(s->env, &argv[0]);
    size_t kept = (size_t)n < sizeof frame ? (size_t)n : sizeof frame;
    void *copy;
    napi_create_buffer_copy(s->env, kept, frame, &copy, &argv[1]);
    napi_create_int32(s->env, from.sll_ifindex, &argv[2]);
    napi_get_boolean(s->env, from.sll_pkttype == PACKET_OUTGOING, &argv[3]);
    deliver(s, argv, 4);
  }
  napi_close_handle_scope(s->env, scope);
}

static void on_closed(uv_handle_t *handle) {
  packet_socket *s = handle->data;
  close(s->fd);
  free(s);
}

// Stops watching and closes the fd once libuv has let go of the handle. Touches no JS: also used at env teardown.
static void close_socket(packet_socket *s) {
  if (s->closed) return;
  s->closed = 1;
  uv_poll_stop(&s->poll);
  uv_close((uv_handle_t *)&s->poll, on_closed);
}

static void on_env_cleanup(void *data) { close_socket(data); }

// The JS side of close(): the object no longer points at the (soon freed) native state, so any later call on it
// finds no socket instead of freed memory.
static void detach(napi_env env, napi_value self, packet_socket *s) {
  napi_remove_wrap(env, self, NULL);
  napi_remove_env_cleanup_hook(env, on_env_cleanup, s);
  napi_delete_reference(env, s->on_frame);
  napi_delete_reference(env, s->self);
  napi_async_destroy(env, s->async);
}

static packet_socket *unwrap(napi_env env, napi_callback_info info, size_t *argc, napi_value *argv) {
  napi_value self;
  void *data;
  napi_get_cb_info(env, info, argc, argv, &self, NULL);
  if (napi_unwrap(env, self, &data) != napi_ok) {
    napi_throw_error(env, "EBADF", "the packet socket is closed");
    return NULL;
  }
  return data;
}

static int open_filtered(void) {
  // Protocol 0 receives nothing until bind(): the filter is in place before the first frame can arrive.
  int fd = socket(AF_PACKET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
  struct sock_fprog program = {sizeof arp_dhcp_and_nd / sizeof arp_dhcp_and_nd[0], arp_dhcp_and_nd};
  struct sockaddr_ll all = {.sll_family = AF_PACKET, .sll_protocol = htons(ETH_P_ALL), .sll_ifindex = 0};
  if (setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &program, sizeof program) < 0 ||
      bind(fd, (struct sockaddr *)&all, sizeof all) < 0) {
    int err = errno;
    close(fd);
    return -err;
  }
  return fd;
}

// new PacketSocket(onFrame(error, frame, ifindex, outgoing))
static napi_value construct(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], self;
  napi_get_cb_info(env, info, &argc, argv, &self, NULL);
  napi_valuetype type;
  if (argc < 1 || napi_typeof(env, argv[0], &type) != napi_ok || type != napi_function) {
    napi_throw_type_error(env, NULL, "PacketSocket needs a frame callback");
    return NULL;
  }
  int fd = open_filtered();
  if (fd < 0) return throw_errno(env, "opening an AF_PACKET socket (needs CAP_NET_RAW)", -fd);
  packet_socket *s = calloc(1, sizeof *s);
  s->fd = fd;
  s->env = env;
  s->poll.data = s;
  uv_loop_t *loop;
  napi_get_uv_event_loop(env, &loop);
  int rc = uv_poll_init_socket(loop, &s->poll, fd);
  if (rc < 0) {
    close(fd);
    free(s);
    return throw_errno(env, "watching the packet socket", -rc);
  }
  napi_value name;
  napi_create_string_utf8(env, "tsmacvlan:packet-socket", NAPI_AUTO_LENGTH, &name);
  napi_async_init(env, NULL, name, &s->async);
  napi_create_reference(env, argv[0], 1, &s->on_frame);
  napi_create_reference(env, self, 1, &s->self);
  napi_wrap(env, self, s, NULL, NULL, NULL);
  napi_add_env_cleanup_hook(env, on_env_cleanup, s);
  uv_poll_start(&s->poll, UV_READABLE, on_readable);
  return self;
}

// Reads (ifindex, Buffer) from the first two arguments; false when they are not that.
static bool read_ifindex_and_buffer(napi_env env, size_t argc, napi_value *argv, int32_t *ifindex, void **data,
                                    size_t *length) {
  bool is_buffer = false;
  if (argc < 2 || napi_get_value_int32(env, argv[0], ifindex) != napi_ok) return false;
  if (napi_is_buffer(env, argv[1], &is_buffer) != napi_ok || !is_buffer) return false;
  return napi_get_buffer_info(env, argv[1], data, length) == napi_ok;
}

// send(ifindex, frame): the frame is a whole Ethernet frame, sent as it is on that interface.
static napi_value send_frame(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  packet_socket *s = unwrap(env, info, &argc, argv);
  if (!s) return NULL;
  int32_t ifindex;
  void *data;
  size_t length;
  if (!read_ifindex_and_buffer(env, argc, argv, &ifindex, &data, &length)) {
    napi_throw_type_error(env, NULL, "send needs (ifindex, Buffer)");
    return NULL;
  }
  if (length < ETH_HLEN) {
    napi_throw_range_error(env, NULL, "a frame is at least 14 bytes (the Ethernet header)");
    return NULL;
  }
  struct sockaddr_ll to = {.sll_family = AF_PACKET, .sll_ifindex = ifindex, .sll_halen = ETH_ALEN};
  memcpy(to.sll_addr, data, ETH_ALEN);
  if (sendto(s->fd, data, length, MSG_DONTWAIT, (struct sockaddr *)&to, sizeof to) < 0)
    return throw_errno(env, "sending a frame", errno);
  return NULL;
}

// membership(ifindex, mac, add): adds (or drops) a MAC to the interface's receive filter for as long as this socket
// holds it (refcounted, dropped with the socket): a unicast MAC (PACKET_MR_UNICAST), so that frames to a MAC that no
// link owns yet still reach us on a NIC that filters unicast in hardware; a group MAC (its first byte odd:
// PACKET_MR_MULTICAST), so that a multicast group the host itself has not joined still gets in.
static napi_value membership(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  packet_socket *s = unwrap(env, info, &argc, argv);
  if (!s) return NULL;
  int32_t ifindex;
  void *mac;
  size_t mac_length = 0;
  bool add = false;
  if (argc < 3 || !read_ifindex_and_buffer(env, argc, argv, &ifindex, &mac, &mac_length) || mac_length != ETH_ALEN ||
      napi_get_value_bool(env, argv[2], &add) != napi_ok) {
    napi_throw_type_error(env, NULL, "membership needs (ifindex, a 6-byte MAC Buffer, add)");
    return NULL;
  }
  int type = ((unsigned char *)mac)[0] & 1 ? PACKET_MR_MULTICAST : PACKET_MR_UNICAST;
  struct packet_mreq request = {.mr_ifindex = ifindex, .mr_type = type, .mr_alen = ETH_ALEN};
  memcpy(request.mr_address, mac, ETH_ALEN);
  int option = add ? PACKET_ADD_MEMBERSHIP : PACKET_DROP_MEMBERSHIP;
  if (setsockopt(s->fd, SOL_PACKET, option, &request, sizeof request) < 0)
    return throw_errno(env, add ? "adding a MAC to an interface's filter" : "dropping a MAC from an interface's filter", errno);
  return NULL;
}

static napi_value close_method(napi_env env, napi_callback_info info) {
  napi_value self;
  void *data;
  napi_get_cb_info(env, info, NULL, NULL, &self, NULL);
  if (napi_unwrap(env, self, &data) != napi_ok) return NULL; // closed already
  detach(env, self, data);
  close_socket(data);
  return NULL;
}

static napi_value set_ref(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  packet_socket *s = unwrap(env, info, &argc, argv);
  if (!s) return NULL;
  bool keep_alive = true;
  napi_get_value_bool(env, argv[0], &keep_alive);
  if (keep_alive)
    uv_ref((uv_handle_t *)&s->poll);
  else
    uv_unref((uv_handle_t *)&s->poll);
  return NULL;
}

NAPI_MODULE_INIT() {
  napi_property_descriptor methods[] = {
      {"send", NULL, send_frame, NULL, NULL, NULL, napi_default, NULL},
      {"close", NULL, close_method, NULL, NULL, NULL, napi_default, NULL},
      {"setRef", NULL, set_ref, NULL, NULL, NULL, napi_default, NULL},
      {"membership", NULL, membership, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_value cls;
  napi_define_class(env, "PacketSocket", NAPI_AUTO_LENGTH, construct, NULL, sizeof methods / sizeof methods[0], methods, &cls);
  napi_set_named_property(env, exports, "PacketSocket", cls);
  return exports;
}
