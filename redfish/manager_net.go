package redfish

import (
	"net"
	"net/http"
	"os"
	"sort"

	"cmcd/flash"
)

// The CMC Manager's network: NetworkProtocol (the listeners the daemon
// opened and the protocols its configuration names; read-only) and
// EthernetInterfaces (the host's interfaces, read-only), plus the
// Manager's DateTime offset and firmware image links.

const (
	netProtoURI = managerURI + "/NetworkProtocol"
	ethURI      = managerURI + "/EthernetInterfaces"
)

// addManagerTree adds the tree's links to the Manager payload.
func (s *Server) addManagerTree(doc obj) {
	now := s.now()
	doc["DateTimeLocalOffset"] = now.Format("-07:00")
	doc["NetworkProtocol"] = odataID(netProtoURI)
	doc["EthernetInterfaces"] = odataID(ethURI)
	links, _ := doc["Links"].(obj)
	if links == nil {
		links = obj{}
		doc["Links"] = links
	}
	// The slot that boots at the next start: the running one unless
	// another was selected by a PATCH of this link (update.go).
	links["ActiveSoftwareImage"] = odataID(firmwareURI(s.nextBootSlot()))
	links["SoftwareImages"] = []any{odataID(firmwareURI(flash.Primary)), odataID(firmwareURI(flash.Backup))}
	s.addTimeSource(doc)
}

func protocol(enabled bool, addr string) obj {
	p := obj{"ProtocolEnabled": enabled}
	if port := portOf(addr); port > 0 {
		p["Port"] = port
	}
	return p
}

func (s *Server) getNetworkProtocol(c *ctx) (any, error) {
	p := s.protocols()
	servers := p.NTPServers
	if servers == nil {
		servers = []string{}
	}
	ntp := protocol(p.NTPEnabled, p.NTP)
	ntp["NTPServers"] = servers
	s.liveNTP(ntp)
	doc := obj{
		"@odata.id":   netProtoURI,
		"@odata.type": "#ManagerNetworkProtocol.v1_12_0.ManagerNetworkProtocol",
		"Id":          "NetworkProtocol",
		"Name":        "CMC Network Protocols",
		"Description": "The CMC's network services: Redfish over HTTPS (and plain HTTP when enabled for tests), IPMI over LAN and NTP.",
		"Status":      status("OK"),
		"HTTPS":       protocol(p.HTTPS != "", p.HTTPS),
		"HTTP":        protocol(p.HTTP != "", p.HTTP),
		"IPMI":        protocol(p.IPMIEnabled, p.IPMI),
		"NTP":         ntp,
	}
	if h, err := os.Hostname(); err == nil && h != "" {
		doc["HostName"] = h
	}
	return doc, nil
}

// patchNetworkProtocol refuses every change but NTP/NTPServers when a time
// source runs (patchNTP, timesrc.go): the network services are set by the
// daemon's configuration (PropertyNotWritable for known properties,
// PropertyUnknown for others).
func (s *Server) patchNetworkProtocol(c *ctx) error {
	body, err := c.body()
	if err != nil {
		return err
	}
	cur, err := s.getNetworkProtocol(c)
	if err != nil {
		return err
	}
	if err := checkWritable(body, cur.(obj), s.ntpWritable()...); err != nil {
		if e, ok := err.(*Error); ok && e.MessageID == "PropertyNotWritable" {
			e.Resolution = "The network services are set in cmcd's configuration (--redfish, --ipmi, --ntp, --ntp-upstream); " +
				"change them there and restart cmcd."
		}
		return err
	}
	if err := s.patchNTP(c, body["NTP"]); err != nil {
		return err
	}
	// An empty object changes nothing.
	v, err := s.getNetworkProtocol(c)
	if err != nil {
		return err
	}
	s.reply(c, http.StatusOK, v)
	return nil
}

// managerInterfaces returns the CMC's non-loopback interfaces by name.
func (s *Server) managerInterfaces() ([]NetInterface, error) {
	all, err := s.tree.o.Interfaces()
	if err != nil {
		return nil, err
	}
	out := all[:0:0]
	for _, i := range all {
		if !i.Loopback {
			out = append(out, i)
		}
	}
	sort.Slice(out, func(a, b int) bool { return out[a].Name < out[b].Name })
	return out, nil
}

func (s *Server) getEthernetInterfaces(c *ctx) (any, error) {
	ifs, err := s.managerInterfaces()
	if err != nil {
		return nil, err
	}
	members := make([]any, len(ifs))
	for i, n := range ifs {
		members[i] = odataID(ethURI + "/" + n.Name)
	}
	return collection(ethURI, "#EthernetInterfaceCollection.EthernetInterfaceCollection", "CMC Ethernet Interfaces", members), nil
}

func (s *Server) getEthernetInterface(c *ctx) (any, error) {
	ifs, err := s.managerInterfaces()
	if err != nil {
		return nil, err
	}
	for _, n := range ifs {
		if n.Name == c.param("id") {
			return ethernetDoc(n), nil
		}
	}
	return nil, notFound("EthernetInterface", c.param("id"))
}

func ethernetDoc(n NetInterface) obj {
	v4, v6 := []any{}, []any{}
	for _, a := range n.Addrs {
		ones, _ := a.Mask.Size()
		if ip4 := a.IP.To4(); ip4 != nil {
			m := a.Mask
			if len(m) == net.IPv6len {
				m = m[12:]
			}
			v4 = append(v4, obj{"Address": ip4.String(), "SubnetMask": net.IP(m).String()})
			continue
		}
		e := obj{"Address": a.IP.String(), "PrefixLength": ones}
		if a.IP.IsLinkLocalUnicast() {
			e["AddressOrigin"] = "LinkLocal"
		}
		v6 = append(v6, e)
	}
	link := "LinkDown"
	if n.LinkUp {
		link = "LinkUp"
	}
	state := "Enabled"
	if !n.Up {
		state = "Disabled"
	}
	doc := obj{
		"@odata.id":        ethURI + "/" + n.Name,
		"@odata.type":      "#EthernetInterface.v1_12_4.EthernetInterface",
		"Id":               n.Name,
		"Name":             "CMC interface " + n.Name,
		"InterfaceEnabled": n.Up,
		"LinkStatus":       link,
		"Status":           obj{"State": state, "Health": "OK"},
		"IPv4Addresses":    v4,
		"IPv6Addresses":    v6,
	}
	if len(n.MAC) == 6 {
		doc["MACAddress"] = n.MAC.String()
	}
	if n.MTU > 0 {
		doc["MTUSize"] = n.MTU
	}
	return doc
}
