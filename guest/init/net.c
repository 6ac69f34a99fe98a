/*
 * krun guest init: the network cards (virtio-net) the VMM announces on the kernel command line, one
 * argument per card:
 *   krun.net=MAC                      the interface comes up, without an address
 *   krun.net=MAC,dhcp                 its address, netmask, default route and name servers by DHCP
 *   krun.net=MAC,A.B.C.D/N[,GATEWAY]  a static address (and default route)
 * The interface is found by its MAC address, so the order the kernel probed the cards in does not matter.
 * DHCP (RFC 2131) is our own small client over a packet socket: one DISCOVER/OFFER/REQUEST/ACK exchange,
 * no lease renewal (a krun guest lives for one command; passt and gvproxy hand out long leases).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <net/route.h>
#include <netinet/in.h>
#include <netpacket/packet.h>
#include <poll.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "net.h"

#define ETH_P_IP_ 0x0800
#define DHCP_SERVER_PORT 67
#define DHCP_CLIENT_PORT 68
#define DHCP_MAGIC 0x63825363
#define DHCPDISCOVER 1
#define DHCPOFFER 2
#define DHCPREQUEST 3
#define DHCPACK 5
#define DHCPNAK 6
#define OPT_NETMASK 1
#define OPT_ROUTER 3
#define OPT_DNS 6
#define OPT_REQUESTED_IP 50
#define OPT_MSG_TYPE 53
#define OPT_SERVER_ID 54
#define OPT_PARAMS 55
#define OPT_END 255
#define MAX_DNS 3

struct bootp {
    uint8_t op, htype, hlen, hops;
    uint32_t xid;
    uint16_t secs, flags;
    uint32_t ciaddr, yiaddr, siaddr, giaddr;
    uint8_t chaddr[16];
    uint8_t sname[64], file[128];
    uint32_t magic;
    uint8_t options[312];
} __attribute__((packed));

struct lease {
    struct in_addr address, netmask, router, server;
    struct in_addr dns[MAX_DNS];
    int ndns;
};

static void (*report)(const char *fmt, ...);

static int parse_mac(const char *s, unsigned char mac[6])
{
    unsigned v[6];
    char tail;
    if (sscanf(s, "%2x:%2x:%2x:%2x:%2x:%2x%c", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &tail) != 6)
        return -1;
    for (int i = 0; i < 6; i++)
        mac[i] = (unsigned char)v[i];
    return 0;
}

/* The interface whose address is `mac`, waiting up to 5 s for the driver to register it. */
static int find_interface(const unsigned char mac[6], char name[IF_NAMESIZE])
{
    char want[18];
    snprintf(want, sizeof want, "%02x:%02x:%02x:%02x:%02x:%02x", mac[0], mac[1], mac[2], mac[3], mac[4], mac[5]);
    for (int attempt = 0; attempt < 500; attempt++) {
        DIR *d = opendir("/sys/class/net");
        struct dirent *e;
        while (d && (e = readdir(d))) {
            char path[300], buf[32];
            if (e->d_name[0] == '.' || strlen(e->d_name) >= IF_NAMESIZE)
                continue;
            snprintf(path, sizeof path, "/sys/class/net/%s/address", e->d_name);
            int fd = open(path, O_RDONLY | O_CLOEXEC);
            if (fd < 0)
                continue;
            ssize_t n = read(fd, buf, sizeof buf - 1);
            close(fd);
            if (n >= 17 && !strncasecmp(buf, want, 17)) {
                memcpy(name, e->d_name, strlen(e->d_name) + 1); /* shorter than IF_NAMESIZE: checked above */
                closedir(d);
                return 0;
            }
        }
        if (d)
            closedir(d);
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    return -1;
}

static int set_up(int s, const char *ifname)
{
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    snprintf(ifr.ifr_name, IF_NAMESIZE, "%s", ifname);
    if (ioctl(s, SIOCGIFFLAGS, &ifr))
        return -1;
    ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
    return ioctl(s, SIOCSIFFLAGS, &ifr);
}

static int set_address(int s, const char *ifname, unsigned long request, struct in_addr a)
{
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    snprintf(ifr.ifr_name, IF_NAMESIZE, "%s", ifname);
    struct sockaddr_in *sin = (struct sockaddr_in *)&ifr.ifr_addr;
    sin->sin_family = AF_INET;
    sin->sin_addr = a;
    return ioctl(s, request, &ifr);
}

static int add_default_route(int s, const char *ifname, struct in_addr gateway)
{
    struct rtentry rt;
    char dev[IF_NAMESIZE];
    memset(&rt, 0, sizeof rt);
    snprintf(dev, sizeof dev, "%s", ifname);
    struct sockaddr_in *dst = (struct sockaddr_in *)&rt.rt_dst;
    struct sockaddr_in *gw = (struct sockaddr_in *)&rt.rt_gateway;
    struct sockaddr_in *mask = (struct sockaddr_in *)&rt.rt_genmask;
    dst->sin_family = gw->sin_family = mask->sin_family = AF_INET;
    gw->sin_addr = gateway;
    rt.rt_flags = RTF_UP | RTF_GATEWAY;
    rt.rt_dev = dev;
    return ioctl(s, SIOCADDRT, &rt);
}

static int configure(const char *ifname, struct in_addr address, struct in_addr netmask, struct in_addr gateway)
{
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (s < 0)
        return -1;
    int rc = 0;
    if (set_address(s, ifname, SIOCSIFADDR, address) || set_address(s, ifname, SIOCSIFNETMASK, netmask)) {
        report("%s: cannot set address %s: %s", ifname, inet_ntoa(address), strerror(errno));
        rc = -1;
    } else if (gateway.s_addr && add_default_route(s, ifname, gateway) && errno != EEXIST) {
        report("%s: cannot add the default route via %s: %s", ifname, inet_ntoa(gateway), strerror(errno));
        rc = -1;
    }
    close(s);
    return rc;
}

/* ---- DHCP */

static uint16_t ip_checksum(const void *data, size_t len)
{
    const uint8_t *p = data;
    uint32_t sum = 0;
    for (size_t i = 0; i + 1 < len; i += 2)
        sum += (uint32_t)(p[i] << 8 | p[i + 1]);
    if (len & 1)
        sum += (uint32_t)(p[len - 1] << 8);
    while (sum >> 16)
        sum = (sum & 0xffff) + (sum >> 16);
    return htons((uint16_t)~sum);
}

/* One DHCP message from 0.0.0.0:68 to 255.255.255.255:67, in an IPv4/UDP packet we build ourselves. */
static int dhcp_send(int s, int ifindex, const unsigned char mac[6], uint32_t xid, int type,
                     const struct lease *offer)
{
    unsigned char pkt[20 + 8 + sizeof(struct bootp)];
    memset(pkt, 0, sizeof pkt);
    struct bootp *b = (struct bootp *)(pkt + 28);
    b->op = 1;
    b->htype = 1;
    b->hlen = 6;
    b->xid = xid;
    b->flags = htons(0x8000); /* answer by broadcast: we have no address yet */
    memcpy(b->chaddr, mac, 6);
    b->magic = htonl(DHCP_MAGIC);
    uint8_t *o = b->options;
    *o++ = OPT_MSG_TYPE, *o++ = 1, *o++ = (uint8_t)type;
    if (type == DHCPREQUEST) {
        *o++ = OPT_REQUESTED_IP, *o++ = 4;
        memcpy(o, &offer->address, 4), o += 4;
        *o++ = OPT_SERVER_ID, *o++ = 4;
        memcpy(o, &offer->server, 4), o += 4;
    }
    *o++ = OPT_PARAMS, *o++ = 3, *o++ = OPT_NETMASK, *o++ = OPT_ROUTER, *o++ = OPT_DNS;
    *o++ = OPT_END;
    size_t udp_len = 8 + sizeof(struct bootp);
    size_t total = 20 + udp_len;
    pkt[0] = 0x45;
    pkt[2] = (uint8_t)(total >> 8), pkt[3] = (uint8_t)total;
    pkt[8] = 64; /* TTL */
    pkt[9] = IPPROTO_UDP;
    memset(pkt + 16, 0xff, 4); /* to 255.255.255.255, from 0.0.0.0 */
    uint16_t csum = ip_checksum(pkt, 20);
    memcpy(pkt + 10, &csum, 2);
    pkt[20] = 0, pkt[21] = DHCP_CLIENT_PORT;
    pkt[22] = 0, pkt[23] = DHCP_SERVER_PORT;
    pkt[24] = (uint8_t)(udp_len >> 8), pkt[25] = (uint8_t)udp_len; /* UDP checksum 0: none */

    struct sockaddr_ll to;
    memset(&to, 0, sizeof to);
    to.sll_family = AF_PACKET;
    to.sll_protocol = htons(ETH_P_IP_);
    to.sll_ifindex = ifindex;
    to.sll_halen = 6;
    memset(to.sll_addr, 0xff, 6);
    return sendto(s, pkt, total, 0, (struct sockaddr *)&to, sizeof to) == (ssize_t)total ? 0 : -1;
}

/* The DHCP message type of a reply to `xid` in `pkt`, with what it offers in `l`; 0 if it is none. */
static int dhcp_parse(const unsigned char *pkt, ssize_t n, uint32_t xid, struct lease *l)
{
    if (n < 20 || (pkt[0] >> 4) != 4 || pkt[9] != IPPROTO_UDP)
        return 0;
    size_t ihl = (size_t)(pkt[0] & 15) * 4;
    if (ihl < 20 || (size_t)n < ihl + 8 + offsetof(struct bootp, options))
        return 0;
    const unsigned char *udp = pkt + ihl;
    if ((udp[2] << 8 | udp[3]) != DHCP_CLIENT_PORT)
        return 0;
    const struct bootp *b = (const struct bootp *)(udp + 8);
    if (b->op != 2 || b->xid != xid || ntohl(b->magic) != DHCP_MAGIC)
        return 0;
    memset(l, 0, sizeof *l);
    l->address.s_addr = b->yiaddr;
    l->netmask.s_addr = htonl(0xffffff00);
    const unsigned char *o = b->options, *end = pkt + n;
    int type = 0;
    while (o < end && *o != OPT_END) {
        if (*o == 0) {
            o++;
            continue;
        }
        if (o + 2 > end || o + 2 + o[1] > end)
            break;
        int code = o[0], len = o[1];
        const unsigned char *v = o + 2;
        if (code == OPT_MSG_TYPE && len >= 1)
            type = v[0];
        else if (code == OPT_NETMASK && len >= 4)
            memcpy(&l->netmask, v, 4);
        else if (code == OPT_ROUTER && len >= 4)
            memcpy(&l->router, v, 4);
        else if (code == OPT_SERVER_ID && len >= 4)
            memcpy(&l->server, v, 4);
        else if (code == OPT_DNS)
            for (int i = 0; i + 4 <= len && l->ndns < MAX_DNS; i += 4)
                memcpy(&l->dns[l->ndns++], v + i, 4);
        o += 2 + len;
    }
    return type;
}

/* Waits up to `ms` for a reply of type `want` (or a NAK): its type, or 0 on timeout. */
static int dhcp_wait(int s, uint32_t xid, int want, struct lease *l, int ms)
{
    unsigned char pkt[1600];
    struct timespec start, now;
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (;;) {
        clock_gettime(CLOCK_MONOTONIC, &now);
        long left = ms - ((now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000);
        if (left <= 0)
            return 0;
        struct pollfd p = {.fd = s, .events = POLLIN};
        if (poll(&p, 1, (int)left) <= 0)
            continue;
        ssize_t n = recv(s, pkt, sizeof pkt, 0);
        if (n <= 0)
            continue;
        int type = dhcp_parse(pkt, n, xid, l);
        if (type == want || type == DHCPNAK)
            return type;
    }
}

static int dhcp(const char *ifname, const unsigned char mac[6], struct lease *lease)
{
    int ifindex = (int)if_nametoindex(ifname);
    int s = socket(AF_PACKET, SOCK_DGRAM | SOCK_CLOEXEC, htons(ETH_P_IP_));
    if (s < 0) {
        report("%s: DHCP needs a packet socket: %s", ifname, strerror(errno));
        return -1;
    }
    struct sockaddr_ll me;
    memset(&me, 0, sizeof me);
    me.sll_family = AF_PACKET;
    me.sll_protocol = htons(ETH_P_IP_);
    me.sll_ifindex = ifindex;
    if (bind(s, (struct sockaddr *)&me, sizeof me)) {
        report("%s: DHCP: bind: %s", ifname, strerror(errno));
        close(s);
        return -1;
    }
    uint32_t xid;
    memcpy(&xid, mac + 2, 4);
    xid ^= (uint32_t)getpid() ^ (uint32_t)time(NULL);
    int rc = -1;
    /* About 15 s in all: 1, 2, 4, 8 s between tries, as the server may still be starting. */
    for (int attempt = 0, wait = 1000; attempt < 4 && rc; attempt++, wait *= 2) {
        struct lease offer;
        if (dhcp_send(s, ifindex, mac, xid, DHCPDISCOVER, NULL)) {
            report("%s: DHCP: send: %s", ifname, strerror(errno));
            break;
        }
        if (dhcp_wait(s, xid, DHCPOFFER, &offer, wait) != DHCPOFFER)
            continue;
        if (dhcp_send(s, ifindex, mac, xid, DHCPREQUEST, &offer))
            break;
        if (dhcp_wait(s, xid, DHCPACK, lease, wait) == DHCPACK)
            rc = 0;
    }
    close(s);
    if (rc)
        report("%s: no address: no DHCP server answered", ifname);
    return rc;
}

/* ---- one card */

static void setup_card(const char *arg, void (*resolv)(const char *text))
{
    char spec[128];
    snprintf(spec, sizeof spec, "%s", arg);
    char *mode = strchr(spec, ',');
    if (mode)
        *mode++ = 0;
    unsigned char mac[6];
    char ifname[IF_NAMESIZE];
    if (parse_mac(spec, mac)) {
        report("krun.net=%s: not a MAC address", arg);
        return;
    }
    if (find_interface(mac, ifname)) {
        report("no network interface has the address %s", spec);
        return;
    }
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (s < 0 || set_up(s, ifname)) {
        report("%s: cannot bring it up: %s", ifname, strerror(errno));
        if (s >= 0)
            close(s);
        return;
    }
    close(s);
    if (!mode || !*mode)
        return;
    struct in_addr zero = {0};
    if (!strcmp(mode, "dhcp")) {
        struct lease l;
        if (dhcp(ifname, mac, &l))
            return;
        if (configure(ifname, l.address, l.netmask, l.router))
            return;
        if (l.ndns > 0 && resolv) {
            char text[200];
            int n = snprintf(text, sizeof text, "# krun: name servers from DHCP on %s\n", ifname);
            for (int i = 0; i < l.ndns && n < (int)sizeof text; i++)
                n += snprintf(text + n, sizeof text - n, "nameserver %s\n", inet_ntoa(l.dns[i]));
            resolv(text);
        }
        return;
    }
    /* A.B.C.D/N[,GATEWAY] */
    char *gw = strchr(mode, ',');
    if (gw)
        *gw++ = 0;
    char *slash = strchr(mode, '/');
    struct in_addr address, gateway = zero, netmask;
    int prefix = slash ? atoi(slash + 1) : 32;
    if (slash)
        *slash = 0;
    if (!inet_aton(mode, &address) || prefix < 1 || prefix > 32 || (gw && !inet_aton(gw, &gateway))) {
        report("krun.net=%s: not MAC,A.B.C.D/N[,GATEWAY]", arg);
        return;
    }
    netmask.s_addr = htonl(prefix == 32 ? 0xffffffffu : ~(0xffffffffu >> prefix));
    configure(ifname, address, netmask, gateway);
}

void setup_network(void (*say)(const char *fmt, ...), void (*resolv)(const char *text))
{
    report = say;
    char cmdline[4096];
    int fd = open("/proc/cmdline", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    ssize_t n = read(fd, cmdline, sizeof cmdline - 1);
    close(fd);
    if (n <= 0)
        return;
    cmdline[n] = 0;
    int cards = 0;
    for (char *save = NULL, *tok = strtok_r(cmdline, " \n", &save); tok; tok = strtok_r(NULL, " \n", &save)) {
        if (strncmp(tok, "krun.net=", 9))
            continue;
        if (cards++ == 0) {
            int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
            if (s >= 0) {
                set_up(s, "lo"); /* a guest with a card has its own loopback, up */
                close(s);
            }
        }
        setup_card(tok + 9, resolv);
    }
}
