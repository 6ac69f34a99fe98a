/* krun guest init: network cards (net.c). */
#ifndef KRUN_INIT_NET_H
#define KRUN_INIT_NET_H

/*
 * Configures every card announced as krun.net=... on the kernel command line. Problems go to `say` and
 * never stop the guest; name servers learnt by DHCP go to `resolv` (the text of /etc/resolv.conf), which
 * may be NULL.
 */
void setup_network(void (*say)(const char *fmt, ...), void (*resolv)(const char *text));

#endif
