package earlyboot

import (
	"fmt"
	"net/netip"
)

// parseV4 returns the 4-byte address and the netmask of prefix length bits.
func parseV4(addr string, bits int) (ip, mask [4]byte, err error) {
	a, err := netip.ParseAddr(addr)
	if err != nil || !a.Is4() {
		return ip, mask, fmt.Errorf("address %q: want an IPv4 address", addr)
	}
	if bits < 0 || bits > 32 {
		return ip, mask, fmt.Errorf("prefix length %d: want 0..32", bits)
	}
	ip = a.As4()
	m := ^uint32(0) << (32 - bits)
	if bits == 0 {
		m = 0
	}
	mask = [4]byte{byte(m >> 24), byte(m >> 16), byte(m >> 8), byte(m)}
	return ip, mask, nil
}

// ParseCIDR splits "10.0.2.15/24" into address and prefix length.
func ParseCIDR(s string) (string, int, error) {
	p, err := netip.ParsePrefix(s)
	if err != nil || !p.Addr().Is4() {
		return "", 0, fmt.Errorf("interface address %q: want IPv4 address/prefix, e.g. 10.0.2.15/24", s)
	}
	return p.Addr().String(), p.Bits(), nil
}
