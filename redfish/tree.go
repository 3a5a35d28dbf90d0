package redfish

import (
	"net"
	"strconv"
	"sync"

	"cmcd/board"
	"cmcd/flash"
)

// TreeOptions are the live sources of the parts of the R1 tree beyond the
// data store: the board (node log clearing, node power control), the two
// firmware image slots, the host's network interfaces and the listeners
// the daemon opened.
type TreeOptions struct {
	// Board drives the nodes: LogService.ClearLog on a node's SEL and fault
	// log and Chassis.Reset. Nil: those actions are not offered.
	Board *board.Chassis
	// Images tells which image slot runs (flash.SimImages on the simulated
	// board; its boot state's switch history is shown when it has one).
	// Nil: the sync engine's running slot.
	Images flash.Images
	// Probers check each slot's health for FirmwareInventory; a missing
	// prober counts as healthy.
	Probers map[flash.Slot]flash.Prober
	// ImageVersion is the firmware version held in a slot. Nil: the running
	// build's version for both slots (the simulated board runs one build
	// from both).
	ImageVersion func(flash.Slot) string
	// Interfaces lists the CMC's network interfaces for
	// Managers/CMC/EthernetInterfaces. Nil: HostInterfaces.
	Interfaces func() ([]NetInterface, error)
	// Protocols describes the network services; SetProtocols updates it
	// once the listeners are bound.
	Protocols Protocols
}

// Protocols describes the CMC's network services for the Manager's
// NetworkProtocol resource.
type Protocols struct {
	HTTPS string // bound address of the Redfish TLS listener; "" = none
	HTTP  string // bound address of the plain-HTTP listener; "" = none
	// IPMI is the configured IPMI-over-LAN address; IPMIEnabled says
	// whether an IPMI listener runs on it.
	IPMI        string
	IPMIEnabled bool
	// NTP is the configured address of the region's NTP server;
	// NTPServers the upstream servers of the daemon's configuration;
	// NTPEnabled whether the time source runs.
	NTP        string
	NTPServers []string
	NTPEnabled bool
}

// NetInterface is one network interface of the CMC.
type NetInterface struct {
	Name     string
	MAC      net.HardwareAddr
	MTU      int
	Up       bool // administratively up
	LinkUp   bool // carrier (running)
	Loopback bool
	Addrs    []*net.IPNet
}

// HostInterfaces reads the host's network interfaces (net.Interfaces).
func HostInterfaces() ([]NetInterface, error) {
	ifs, err := net.Interfaces()
	if err != nil {
		return nil, err
	}
	out := make([]NetInterface, 0, len(ifs))
	for _, i := range ifs {
		ni := NetInterface{Name: i.Name, MAC: i.HardwareAddr, MTU: i.MTU, Up: i.Flags&net.FlagUp != 0,
			LinkUp: i.Flags&net.FlagRunning != 0, Loopback: i.Flags&net.FlagLoopback != 0}
		addrs, err := i.Addrs()
		if err != nil {
			return nil, err
		}
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok {
				ni.Addrs = append(ni.Addrs, n)
			}
		}
		out = append(out, ni)
	}
	return out, nil
}

// treeState is the Server's view of TreeOptions.
type treeState struct {
	o      TreeOptions
	booted flash.Slot // the slot that ran when the service started

	mu    sync.Mutex
	proto Protocols
}

func (s *Server) initTree(o TreeOptions) {
	if o.Interfaces == nil {
		o.Interfaces = HostInterfaces
	}
	s.tree.o = o
	s.tree.proto = o.Protocols
	s.tree.booted = s.runningSlot()
}

// SetProtocols records the network services once the daemon's listeners
// are bound (ports chosen by the OS are known only then).
func (s *Server) SetProtocols(p Protocols) {
	s.tree.mu.Lock()
	defer s.tree.mu.Unlock()
	s.tree.proto = p
}

func (s *Server) protocols() Protocols {
	s.tree.mu.Lock()
	defer s.tree.mu.Unlock()
	return s.tree.proto
}

// runningSlot is the image slot the CMC runs from.
func (s *Server) runningSlot() flash.Slot {
	if s.tree.o.Images != nil {
		return s.tree.o.Images.Active()
	}
	return s.eng.State().Running
}

// portOf returns the port of a host:port address (0 if none).
func portOf(addr string) int {
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		return 0
	}
	n, _ := strconv.Atoi(p)
	return n
}

// treeMetadata are the schemas of the resources of this file's siblings,
// for $metadata.
var treeMetadata = [][2]string{
	{"SensorCollection", ""}, {"Sensor", "v1_12_0"},
	{"ManagerNetworkProtocol", "v1_12_0"}, {"EthernetInterfaceCollection", ""}, {"EthernetInterface", "v1_12_4"},
	{"UpdateService", "v1_17_0"}, {"SoftwareInventoryCollection", ""}, {"SoftwareInventory", "v1_13_0"},
}

// treeMessages are the Base registry messages (Base.1.22.1.json) the
// tree's actions answer with.
var treeMessages = map[string]baseMessage{
	"ActionParameterMissing":        {"The action %1 requires the parameter %2 to be present in the request body.", "Critical", "Supply the action with the required parameter in the request body when the request is resubmitted."},
	"ActionParameterValueNotInList": {"The value '%1' for the parameter %2 in the action %3 is not in the list of acceptable values.", "Warning", "Choose a value from the enumeration list that the implementation can support and resubmit the request if the operation failed."},
	"ActionParameterValueTypeError": {"The value '%1' for the parameter %2 in the action %3 is not a type that the parameter can accept.", "Warning", "Correct the value for the parameter in the request body and resubmit the request if the operation failed."},
	"OperationFailed":               {"An error occurred internal to the service as part of the overall request.  Partial results may have been returned.", "Warning", "Resubmit the request.  If the problem persists, consider resetting the service or provider."},
}

func init() {
	metadataNamespaces = append(metadataNamespaces, treeMetadata...)
	for k, v := range treeMessages {
		baseMessages[k] = v
	}
}
