package daemon

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"mime/multipart"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"cmcd/firmware"
	"cmcd/firmware/firmwaretest"
	"cmcd/pair"
)

// upgradeTo installs and activates a signed image of version in the
// module's other slot, so that its next start boots it on trial and,
// once healthy, offers the S5 keep-or-restore choice.
func upgradeTo(t *testing.T, c Config, kit *firmwaretest.Kit, version string) {
	t.Helper()
	if err := os.MkdirAll(c.Data, 0o700); err != nil {
		t.Fatal(err)
	}
	o, err := FirmwareOptions(c, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	fw, err := firmware.Open(o)
	if err != nil {
		t.Fatal(err)
	}
	defer fw.Close()
	if _, err := fw.Boot(); err != nil {
		t.Fatal(err)
	}
	if _, err := fw.InstallFile(context.Background(), kit.Signed(version, "sim", 40_000, nil), nil); err != nil {
		t.Fatal(err)
	}
	if err := fw.Activate(fw.State().Active.Other()); err != nil {
		t.Fatal(err)
	}
}

// dataChoice reads Oem.Cmcd.DataChoice of a module's Manager.
func (r *pairRig) dataChoice(id string, admin []string) (map[string]any, error) {
	x := r.do(id, "GET", "/redfish/v1/Managers/CMC", "", admin, "")
	if x.code != 200 {
		return nil, fmt.Errorf("GET Manager on %s: %d %s", id, x.code, x.body)
	}
	var doc struct {
		Oem struct {
			Cmcd struct {
				DataChoice map[string]any
			}
		}
	}
	if err := json.Unmarshal(x.body, &doc); err != nil {
		return nil, err
	}
	return doc.Oem.Cmcd.DataChoice, nil
}

// TestPairDataChoice (D3/H3 for the S5 choice): both modules were
// upgraded to the same version and offer the keep-or-restore choice; the
// standby refuses the answer (503); the operator's answer on the active
// goes through the log and the standby applies it to its own pending
// choice (its own flash), naming who answered on which module. An
// activation on the active (upload, then PATCH of ActiveSoftwareImage)
// changes only that module's boot slot and is recorded pair-wide: the
// standby's GET /cmcd/pair/firmware shows it, its own boot slot stays.
func TestPairDataChoice(t *testing.T) {
	kit := firmwaretest.New(t)
	pub := kit.PubFile()
	r := newPairRig(t, func(id string, c *Config) {
		c.Firmware.TrustedKeyFiles = []string{pub}
		upgradeTo(t, *c, kit, "9.1.0")
	})
	r.waitRole("A", pair.RoleActive)
	r.waitRole("B", pair.RoleStandby)
	var admin []string
	r.eventually("the pair's admin password", func() error {
		for _, id := range []string{"A", "B"} {
			raw, err := os.ReadFile(filepath.Join(r.mods[id].c.Data, "initial-admin-password"))
			if err == nil {
				pw := strings.TrimSpace(string(raw))
				if x := r.do("A", "GET", "/redfish/v1/Chassis", "", []string{"admin", pw}, ""); x.code == 200 {
					admin = []string{"admin", pw}
					return nil
				}
			}
		}
		return fmt.Errorf("no initial password works on A")
	})
	for _, id := range []string{"A", "B"} {
		r.eventually(id+" offers the choice", func() error {
			dc, err := r.dataChoice(id, admin)
			if err != nil {
				return err
			}
			if dc["State"] != "pending" || dc["Version"] != "9.1.0" {
				return fmt.Errorf("choice on %s: %v", id, dc)
			}
			return nil
		})
	}
	const action = "/redfish/v1/Managers/CMC/Actions/Oem/Cmcd.DataChoice"
	if x := r.do("B", "POST", action, "", admin, `{"Choice":"Keep"}`); x.code != 503 {
		t.Fatalf("answer on the standby: %d %s", x.code, x.body)
	}
	if x := r.do("A", "POST", action, "", admin, `{"Choice":"Keep"}`); x.code != 200 {
		t.Fatalf("answer on the active: %d %s", x.code, x.body)
	}
	r.eventually("B applies the pair's answer", func() error {
		dc, err := r.dataChoice("B", admin)
		if err != nil {
			return err
		}
		if dc["State"] != "done" || dc["Answer"] != "Keep" || !strings.Contains(fmt.Sprint(dc["AnsweredBy"]), "answered on module A") {
			return fmt.Errorf("choice on B: %v", dc)
		}
		return nil
	})
	if !strings.Contains(r.mods["B"].logs.String(), "applied the operator's keep-or-restore answer from the pair") {
		t.Fatalf("B's log:\n%s", r.mods["B"].logs.String())
	}

	// Activation is per module: A uploads 9.2.0 into its other slot and
	// selects it for its next boot; the request is recorded pair-wide (B
	// knows it) but B's own boot slot does not change.
	img, err := os.ReadFile(kit.Signed("9.2.0", "sim", 40_000, nil))
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	fw, _ := mw.CreateFormFile("UpdateFile", "cmcd-9.2.0.img")
	fw.Write(img)
	mw.Close()
	req, _ := http.NewRequest("POST", r.mods["A"].http+"/redfish/v1/UpdateService/upload", &buf)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	req.SetBasicAuth(admin[0], admin[1])
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 202 {
		t.Fatalf("upload on A: %s", resp.Status)
	}
	task := resp.Header.Get("Location")
	r.eventually("the upload task", func() error {
		x := r.do("A", "GET", task, "", admin, "")
		if !strings.Contains(string(x.body), `"Completed"`) {
			return fmt.Errorf("task: %d %s", x.code, x.body)
		}
		return nil
	})
	bBefore := r.do("B", "GET", "/redfish/v1/Managers/CMC", "", admin, "")
	patch := `{"Links":{"ActiveSoftwareImage":{"@odata.id":"/redfish/v1/UpdateService/FirmwareInventory/Primary"}}}`
	if x := r.do("A", "PATCH", "/redfish/v1/Managers/CMC", "", admin, patch); x.code != 200 {
		t.Fatalf("activation on A: %d %s", x.code, x.body)
	}
	r.eventually("A's activation request on B", func() error {
		x := r.do("B", "GET", "/cmcd/pair/firmware", "", admin, "")
		var st fwState
		if x.code != 200 || json.Unmarshal(x.body, &st) != nil {
			return fmt.Errorf("%d %s", x.code, x.body)
		}
		if a := st.Activations["A"]; a == nil || a.Slot != "primary" || a.Version != "9.2.0" || st.Activations["B"] != nil {
			return fmt.Errorf("activations %s", x.body)
		}
		if st.Answer == nil || st.Answer.Version != "9.1.0" || st.Answer.Answer != "keep" || st.Answer.Module != "A" {
			return fmt.Errorf("answer %s", x.body)
		}
		return nil
	})
	bAfter := r.do("B", "GET", "/redfish/v1/Managers/CMC", "", admin, "")
	if activeImage(t, bBefore.body) != activeImage(t, bAfter.body) {
		t.Fatalf("B's boot slot changed: %s -> %s", activeImage(t, bBefore.body), activeImage(t, bAfter.body))
	}
}

func activeImage(t *testing.T, manager []byte) string {
	t.Helper()
	var m struct {
		Links struct{ ActiveSoftwareImage map[string]string }
	}
	if err := json.Unmarshal(manager, &m); err != nil {
		t.Fatal(err)
	}
	return m.Links.ActiveSoftwareImage["@odata.id"]
}
