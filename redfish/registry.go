package redfish

import (
	"strconv"
	"strings"
)

// The OEM message registry of the events cmcd publishes (R5), served at
// /redfish/v1/Registries/Cmcd.1.0 (MessageRegistryFile) and
// /redfish/v1/Registries/Cmcd.1.0/Registry (MessageRegistry). The Base
// registry the error answers use is listed with DMTF's publication URI.

const (
	registriesURI   = "/redfish/v1/Registries"
	cmcdRegistry    = "Cmcd.1.0"    // the prefix.major.minor events name
	cmcdRegistryVer = "1.0.0"       // RegistryVersion
	baseRegistryVer = "Base.1.22.1" // the Base registry file errors.go copies from
)

// cmcdMessage is one message of the Cmcd registry.
type cmcdMessage struct {
	description string
	message     string // %1, %2 ... are the MessageArgs
	severity    string // the default; an event may carry another
	args        []string
	argDescs    []string
	resolution  string
}

// cmcdMessages is the Cmcd.1.0 registry.
var cmcdMessages = map[string]cmcdMessage{
	"RoundCommitted": {
		description: "A sync round committed: the backup image's data area now holds the selected categories of the group the round carried.",
		message:     "Sync round %1 was committed: %2",
		severity:    "OK", args: []string{"number", "string"},
		argDescs:   []string{"The round number.", "What the round carried and wrote."},
		resolution: "None.",
	},
	"RoundRolledBack": {
		description: "A sync round was interrupted and rolled back; the destination holds the last committed round.",
		message:     "Sync round %1 was rolled back: %2",
		severity:    "Warning", args: []string{"number", "string"},
		argDescs:   []string{"The round number.", "Why and how the round was rolled back."},
		resolution: "Check the primary image; the next round retries.",
	},
	"BackupImageStarted": {
		description: "The primary image did not answer within the response-time threshold and the backup image was started.",
		message:     "The backup image was started: %1",
		severity:    "Critical", args: []string{"string"},
		argDescs:   []string{"The circumstances."},
		resolution: "Repair or replace the primary image.",
	},
	"ConfigurationChanged": {
		description: "The sync selection or configuration changed.",
		message:     "The sync configuration changed: %1",
		severity:    "OK", args: []string{"string"},
		argDescs:   []string{"The options changed."},
		resolution: "None.",
	},
	"Alarm": {
		description: "An alarm raised by the CMC.",
		message:     "Alarm: %1",
		severity:    "Warning", args: []string{"string"},
		argDescs:   []string{"The alarm."},
		resolution: "See the alarm text.",
	},
	"CMCEvent": {
		description: "Another event of the CMC's event log.",
		message:     "%1",
		severity:    "OK", args: []string{"string"},
		argDescs:   []string{"The event."},
		resolution: "None.",
	},
	"SensorHealthChanged": {
		description: "The health of a power supply, fan, node or node sensor changed.",
		message:     "The health of %1 changed from %2 to %3.",
		severity:    "Warning", args: []string{"string", "string", "string"},
		argDescs:   []string{"The component.", "The previous health.", "The new health."},
		resolution: "Inspect the component if its health is not OK.",
	},
	"EventsLost": {
		description: "Events this stream should have carried are no longer held by the service (the client was too slow, or resumed after the events were overwritten or the service restarted).",
		message:     "Events after event %1 were lost.",
		severity:    "Warning", args: []string{"string"},
		argDescs:   []string{"The last event the client received (Last-Event-ID), or 0."},
		resolution: "Read the CMC event log to recover what was missed.",
	},
}

// cmcdMessageText fills in a Cmcd message's arguments.
func cmcdMessageText(id string, args []string) string {
	s := cmcdMessages[id].message
	for i := len(args); i > 0; i-- {
		s = strings.ReplaceAll(s, "%"+strconv.Itoa(i), args[i-1])
	}
	return s
}

func (s *Server) getRegistries(c *ctx) (any, error) {
	return collection(registriesURI, "#MessageRegistryFileCollection.MessageRegistryFileCollection",
		"Registry File Collection", []any{
			odataID(registriesURI + "/" + baseRegistry),
			odataID(registriesURI + "/" + cmcdRegistry),
		}), nil
}

func (s *Server) getRegistryFile(c *ctx) (any, error) {
	id := c.param("id")
	doc := obj{
		"@odata.id":   registriesURI + "/" + id,
		"@odata.type": "#MessageRegistryFile.v1_1_5.MessageRegistryFile",
		"Id":          id,
		"Languages":   []string{"en"},
		"Registry":    id,
	}
	switch id {
	case cmcdRegistry:
		doc["Name"] = "Cmcd Message Registry File"
		doc["Description"] = "The messages of the events cmcd publishes"
		doc["Location"] = []any{obj{"Language": "en", "Uri": registriesURI + "/" + cmcdRegistry + "/Registry"}}
	case baseRegistry:
		doc["Name"] = "Base Message Registry File"
		doc["Description"] = "DMTF's Base registry, which error answers use"
		doc["Location"] = []any{obj{"Language": "en",
			"PublicationUri": "https://redfish.dmtf.org/registries/" + baseRegistryVer + ".json"}}
	default:
		return nil, notFound("MessageRegistryFile", id)
	}
	return doc, nil
}

func (s *Server) getCmcdRegistry(c *ctx) (any, error) {
	msgs := obj{}
	for id, m := range cmcdMessages {
		msgs[id] = obj{
			"Description":     m.description,
			"Message":         m.message,
			"Severity":        m.severity,
			"MessageSeverity": m.severity,
			"NumberOfArgs":    len(m.args),
			"ParamTypes":      m.args,
			"ArgDescriptions": m.argDescs,
			"Resolution":      m.resolution,
		}
	}
	return obj{
		"@odata.type":     "#MessageRegistry.v1_7_0.MessageRegistry",
		"Id":              "Cmcd." + cmcdRegistryVer,
		"Name":            "Cmcd Message Registry",
		"Language":        "en",
		"Description":     "The events of the cmcd chassis management controller: sync rounds, failover, configuration, alarms and sensor health.",
		"RegistryPrefix":  "Cmcd",
		"RegistryVersion": cmcdRegistryVer,
		"OwningEntity":    "cmcd",
		"Messages":        msgs,
	}, nil
}
