package redfish_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"cmcd/firmware/firmwaretest"
	"cmcd/internal/rfschema"
)

// TestUpdateRedfishtool drives a real `cmcd run` with redfishtool:
// SimpleUpdate of an image file on the board, the Task read until
// Completed, activation by a raw PATCH of ActiveSoftwareImage; a remote
// ImageURI is refused.
func TestUpdateRedfishtool(t *testing.T) {
	k := firmwaretest.New(t)
	d := startDaemon(t, "--trusted-key", k.PubFile())
	img := k.Signed("2.2.0", "sim", 100_000, nil)
	if _, errs, code := d.rft(false, "-u", "admin", "-p", d.pw, "raw", "POST", "/redfish/v1/UpdateService/Actions/UpdateService.SimpleUpdate",
		"-d", `{"ImageURI":"https://192.0.2.1/x.img"}`); code == 0 || !strings.Contains(errs, "400") {
		t.Fatalf("remote ImageURI: exit %d %s", code, errs)
	}
	task := d.rftJSON(false, "raw", "POST", "/redfish/v1/UpdateService/Actions/UpdateService.SimpleUpdate", "-d", `{"ImageURI":"file://`+img+`"}`)
	uri, _ := task["@odata.id"].(string)
	if !strings.HasPrefix(uri, "/redfish/v1/TaskService/Tasks/") {
		t.Fatalf("SimpleUpdate answer: %v", task)
	}
	for deadline := time.Now().Add(60 * time.Second); task["TaskState"] != "Completed"; {
		if task["TaskState"] == "Exception" || time.Now().After(deadline) {
			t.Fatalf("task: %v", task)
		}
		time.Sleep(50 * time.Millisecond)
		task = d.rftJSON(false, "raw", "GET", uri)
	}
	v, err := rfschema.New()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(task)
	if err := v.Validate(b); err != nil {
		t.Errorf("task via redfishtool: %v\n%s", err, b)
	}
	m := d.rftJSON(false, "raw", "PATCH", "/redfish/v1/Managers/CMC", "-d",
		`{"Links":{"ActiveSoftwareImage":{"@odata.id":"/redfish/v1/UpdateService/FirmwareInventory/Backup"}}}`)
	if got := m["Links"].(map[string]any)["ActiveSoftwareImage"].(map[string]any)["@odata.id"]; got != "/redfish/v1/UpdateService/FirmwareInventory/Backup" {
		t.Fatalf("after PATCH: ActiveSoftwareImage %v", got)
	}
	if inv := d.get("/redfish/v1/UpdateService/FirmwareInventory/Backup"); inv["Version"] != "2.2.0" || inv["Oem"].(map[string]any)["Cmcd"].(map[string]any)["NextBoot"] != true {
		t.Fatalf("backup slot: %v", inv)
	}
}
