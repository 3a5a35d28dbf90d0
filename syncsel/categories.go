package syncsel

import (
	"fmt"
	"strings"
)

// Category is one kind of syncable information (S1).
type Category string

// The six categories of S1.
const (
	CatPSU   Category = "psu"
	CatFan   Category = "fan"
	CatNode  Category = "node"
	CatSEL   Category = "sel"
	CatFault Category = "fault"
	CatAsset Category = "asset"
)

// Categories lists every category in a fixed order.
var Categories = []Category{CatPSU, CatFan, CatNode, CatSEL, CatFault, CatAsset}

// CategoryInfo describes a category for the selection model.
type CategoryInfo struct {
	Title       string
	Explanation string
}

var categoryInfo = map[Category]CategoryInfo{
	CatPSU: {"Power-supply information",
		"Identity (model, serial, firmware), presence, power-good state and the last readings (input/output voltage, current, " +
			"output power, temperature) of every PSU bay. Syncing it lets the backup image report the chassis power budget and " +
			"the PSU inventory at once after a take-over, before the first PMBus poll completes. Readings change every " +
			"collection, so this category is small but changes in almost every round."},
	CatFan: {"Fan information",
		"Presence, speed (RPM), PWM duty and health of every chassis fan. Syncing it gives the backup image the last known " +
			"cooling state, so it can start from the same fan curve instead of running all fans at full speed until it has " +
			"measured them. Small; changes with every collection."},
	CatNode: {"Node information",
		"For each compute node slot: presence, reachability of the node BMC, power state, health, power draw and the node's " +
			"key sensor readings. Syncing it keeps the backup image's view of which nodes are installed and powered, which the " +
			"power-capping and fan policies need immediately after a take-over."},
	CatSEL: {"Node event log (SEL)",
		"Every node's System Event Log as collected from its BMC over IPMI (up to 3,639 entries per node). Node BMCs " +
			"overwrite or clear their SEL; syncing it keeps the chassis' copy of the history on the backup flash so events are " +
			"not lost when the primary image fails. The largest category: a full copy of 16 nodes is several MB, but after " +
			"the first round only new entries are written."},
	CatFault: {"Node fault log",
		"Faults derived from node SEL events and sensor states (memory ECC, processor IERR, over-temperature, PSU input " +
			"loss ...), with their active/cleared state. Syncing it lets the backup image keep raising the same alarms and " +
			"keep the fault history the service engineer needs."},
	CatAsset: {"Node asset (FRU) information",
		"The FRU inventory of the enclosure and of each node: board, product and chassis areas (manufacturer, part and " +
			"serial numbers, asset tag). Changes only when hardware is replaced; syncing it keeps the inventory available to " +
			"asset-management tools when the primary image is down."},
}

// Info returns the title and explanation of a category.
func (c Category) Info() CategoryInfo { return categoryInfo[c] }

// Valid reports whether c is one of the six categories.
func (c Category) Valid() bool { _, ok := categoryInfo[c]; return ok }

// ParseCategory parses a category name.
func ParseCategory(s string) (Category, error) {
	c := Category(strings.TrimSpace(s))
	if !c.Valid() {
		return "", fmt.Errorf("unknown category %q (allowed: %s)", s, categoryList())
	}
	return c, nil
}

func categoryList() string {
	names := make([]string, len(Categories))
	for i, c := range Categories {
		names[i] = string(c)
	}
	return strings.Join(names, ", ")
}
