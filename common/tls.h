/* tls: the TLS policy every listener of the product shares. */
#ifndef FSG_COMMON_TLS_H
#define FSG_COMMON_TLS_H

/*
 * GnuTLS priorities: TLS 1.3, and 1.2 with ECDHE and AEAD only (GnuTLS's NORMAL would also
 * offer CBC suites, RSA key exchange and older versions).
 */
#define FSG_TLS_PRIORITIES                                                                    \
	"SECURE128:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2:-CIPHER-ALL:+AES-128-GCM:+AES-256-GCM:"  \
	"+CHACHA20-POLY1305:-MAC-ALL:+AEAD:-KX-ALL:+ECDHE-ECDSA:+ECDHE-RSA:-GROUP-ALL:"         \
	"+GROUP-X25519:+GROUP-SECP256R1:+GROUP-SECP384R1:%SERVER_PRECEDENCE:%NO_TICKETS"

#endif
