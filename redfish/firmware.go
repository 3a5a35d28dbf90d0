package redfish

import (
	"context"
	"time"

	"cmcd/flash"
	"cmcd/internal/version"
)

// UpdateService and FirmwareInventory: one SoftwareInventory entry per
// image slot (Primary, Backup) with the version it holds, whether it runs
// (Active; the Manager's Links.ActiveSoftwareImage points at it), whether
// it was the one running when the service started, and its health from the
// slot's probe. With a firmware service (Options.Firmware) the entries come
// from its inventory and the UpdateService offers uploads (update.go).

const (
	updateURI = "/redfish/v1/UpdateService"
	fwInvURI  = updateURI + "/FirmwareInventory"
	// ProbeTimeout bounds the health probe of a slot for FirmwareInventory.
	ProbeTimeout = 500 * time.Millisecond
)

var fwSlots = []flash.Slot{flash.Primary, flash.Backup}

func slotID(sl flash.Slot) string {
	if sl == flash.Primary {
		return "Primary"
	}
	return "Backup"
}

func firmwareURI(sl flash.Slot) string { return fwInvURI + "/" + slotID(sl) }

func (s *Server) getUpdateService(c *ctx) (any, error) {
	doc := obj{
		"@odata.id":         updateURI,
		"@odata.type":       "#UpdateService.v1_17_0.UpdateService",
		"Id":                "UpdateService",
		"Name":              "CMC Update Service",
		"Description":       "Inventory of the CMC's two firmware image slots; this build offers no image upload.",
		"ServiceEnabled":    true,
		"Status":            status("OK"),
		"FirmwareInventory": odataID(fwInvURI),
	}
	s.addUpdateService(doc)
	return doc, nil
}

func (s *Server) getFirmwareInventory(c *ctx) (any, error) {
	members := make([]any, len(fwSlots))
	for i, sl := range fwSlots {
		members[i] = odataID(firmwareURI(sl))
	}
	return collection(fwInvURI, "#SoftwareInventoryCollection.SoftwareInventoryCollection", "CMC Firmware Inventory", members), nil
}

// slotHealth probes a slot ("OK" or "Critical" with the probe's error).
func (s *Server) slotHealth(ctx context.Context, sl flash.Slot) (string, string) {
	p := s.tree.o.Probers[sl]
	if p == nil {
		return "OK", ""
	}
	ctx, cancel := context.WithTimeout(ctx, ProbeTimeout)
	defer cancel()
	if err := p.Probe(ctx); err != nil {
		return "Critical", err.Error()
	}
	return "OK", ""
}

func (s *Server) getSoftwareInventory(c *ctx) (any, error) {
	var sl flash.Slot
	switch c.param("id") {
	case "Primary":
		sl = flash.Primary
	case "Backup":
		sl = flash.Backup
	default:
		return nil, notFound("SoftwareInventory", c.param("id"))
	}
	running := s.runningSlot() == sl
	ver := version.Version
	if s.tree.o.ImageVersion != nil {
		ver = s.tree.o.ImageVersion(sl)
	}
	health, probeErr := s.slotHealth(c.r.Context(), sl)
	state := "StandbySpare"
	if running {
		state = "Enabled"
	}
	oem := obj{"Slot": sl.String(), "Running": running, "BootedAtStart": s.tree.booted == sl}
	if probeErr != "" {
		oem["ProbeError"] = probeErr
	}
	if bs, ok := s.tree.o.Images.(interface{ State() flash.BootState }); ok {
		st := bs.State()
		for i := len(st.Switches) - 1; i >= 0; i-- {
			if sw := st.Switches[i]; sw.To == sl {
				oem["LastStarted"] = obj{"Time": rfTime(sw.Time), "From": sw.From.String(), "Reason": sw.Reason}
				break
			}
		}
	}
	doc := obj{
		"@odata.id":    firmwareURI(sl),
		"@odata.type":  "#SoftwareInventory.v1_13_0.SoftwareInventory",
		"Id":           slotID(sl),
		"Name":         "CMC firmware, " + sl.String() + " image slot",
		"Description":  "The cmcd firmware image in the " + sl.String() + " slot.",
		"Manufacturer": "cmcd",
		"SoftwareId":   "cmcd",
		"Active":       running,
		// An update writes only the slot that does not run (F2).
		"Updateable":     !running,
		"WriteProtected": running,
		"Status":         obj{"State": state, "Health": health},
		"RelatedItem":    []any{odataID(managerURI)},
		"Oem":            obj{"Cmcd": oem},
	}
	if ver != "" {
		doc["Version"] = ver
	}
	if s.fw != nil {
		s.fwSlotDoc(doc, sl, health)
	}
	return doc, nil
}
