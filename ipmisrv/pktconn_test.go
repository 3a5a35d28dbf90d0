package ipmisrv_test

import (
	"bytes"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"
)

// asfPing is an RMCP ASF Presence Ping (DSP0136 3.2.4.1), which the
// responder answers with a Pong outside any session.
var asfPing = []byte{0x06, 0x00, 0xff, 0x06, 0x00, 0x00, 0x11, 0xbe, 0x80, 0x2a, 0x00, 0x00}

// pingFrom sends a presence ping from an unconnected socket on local to
// the responder at to and returns the address the Pong came from.
func pingFrom(t *testing.T, local, to string) net.Addr {
	t.Helper()
	c, err := net.ListenPacket("udp", net.JoinHostPort(local, "0"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	dst, err := net.ResolveUDPAddr("udp", to)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 512)
	for try := 0; try < 5; try++ {
		if _, err := c.WriteTo(asfPing, dst); err != nil {
			t.Fatal(err)
		}
		c.SetReadDeadline(time.Now().Add(time.Second))
		n, from, err := c.ReadFrom(buf)
		if err != nil {
			continue
		}
		if n < 9 || buf[8] != 0x40 || !bytes.Equal(buf[4:8], asfPing[4:8]) {
			t.Fatalf("answer to the ping is not a Pong: % x", buf[:n])
		}
		return from
	}
	t.Fatalf("no Pong from %s", to)
	return nil
}

// TestReplyFromAddressAsked: the responder bound to the wildcard address
// (as on a module of the pair, where the floating address comes and goes)
// answers each request from the address the request was sent to, not
// from the route's preferred source (which would be 127.0.0.1 here, as it
// is the module's own address behind the floating one): a Pong to a ping
// sent to 127.0.0.2, 127.0.0.3 and ::1 comes from that address, and
// ipmitool lanplus — its socket connected to the address it asks — logs
// in and reads through 127.0.0.2. The pair lab repeats the ipmitool part
// through the floating address (pair/lab TestLabAccountsAndD4).
func TestReplyFromAddressAsked(t *testing.T) {
	need(t, "ipmitool")
	f := newFixture(t, 1, 3, nil, func(f *fixture) { f.listen, f.host = "", "127.0.0.2" })
	port := strconv.Itoa(f.port)
	for _, to := range []string{"127.0.0.2", "127.0.0.3", "127.0.0.1"} {
		from := pingFrom(t, "127.0.0.1", net.JoinHostPort(to, port))
		if h, _, _ := net.SplitHostPort(from.String()); h != to {
			t.Errorf("ping to %s answered from %s", to, from)
		}
	}
	if c, err := net.ListenPacket("udp", "[::1]:0"); err == nil { // the IPv6 half of the dual-stack socket
		c.Close()
		if from := pingFrom(t, "::1", net.JoinHostPort("::1", port)); !strings.HasPrefix(from.String(), "[::1]:") {
			t.Errorf("ping to ::1 answered from %s", from)
		} else {
			t.Logf("ping to ::1 answered from %s", from)
		}
	}
	mc := colon(f.ipmitool("17", "mc", "info"))
	if mc["IPMI Version"] != "2.0" || mc["Manufacturer ID"] != "32473" {
		t.Errorf("mc info through 127.0.0.2: %v", mc)
	}
	if out := f.ipmitool("3", "chassis", "power", "status"); !strings.Contains(out, "Chassis Power is on") {
		t.Errorf("power status through 127.0.0.2: %s", out)
	}
}
