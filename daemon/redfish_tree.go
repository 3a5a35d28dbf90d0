package daemon

import (
	"cmcd/board"
	"cmcd/flash"
	"cmcd/redfish"
)

// redfishTree is what the Redfish tree reads beyond the data store: the
// board (node log clearing, node power), the image slots and their probes.
func redfishTree(c Config, b *board.Chassis, images flash.Images, areas flash.Areas) redfish.TreeOptions {
	return redfish.TreeOptions{
		Board:  b,
		Images: images,
		Probers: map[flash.Slot]flash.Prober{
			flash.Primary: flash.AreaProber{Path: areas.StorePath(flash.Primary)},
			flash.Backup:  flash.AreaProber{Path: areas.StorePath(flash.Backup)},
		},
		Protocols: redfishProtocols(c, nil),
	}
}

// redfishProtocols describes the network services for the Manager's
// NetworkProtocol: the Redfish listeners as bound (scheme -> address), the
// IPMI and NTP settings of the configuration.
func redfishProtocols(c Config, bound map[string]string) redfish.Protocols {
	return redfish.Protocols{
		HTTPS: bound["https"],
		HTTP:  bound["http"],
		// serveIPMI runs the RMCP+ responder whenever an address is set.
		IPMI:        c.IPMI,
		IPMIEnabled: c.IPMI != "",
		NTP:         c.NTP,
		NTPServers:  c.NTPUpstream,
		NTPEnabled:  c.NTP != "", // startNTP runs the time source whenever an address is set
	}
}
