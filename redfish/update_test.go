package redfish

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"github.com/stmcginnis/gofish"

	"cmcd/firmware"
	"cmcd/firmware/firmwaretest"
	"cmcd/flash"
	"cmcd/internal/rfschema"
)

// rigDevice is the simulated slot of the update tests (small: fast).
var rigDevice = flash.DeviceInfo{Size: 4 << 20, EraseSize: 64 << 10, WriteSize: 1}

func openRigFirmware(t *testing.T, opt rigOption, areas flash.Areas) *firmware.Service {
	t.Helper()
	dev := opt.device
	if dev == (flash.DeviceInfo{}) {
		dev = rigDevice
	}
	o := firmware.Options{Areas: areas, Keys: opt.kit.Ring(), Board: "sim", SimDevice: dev, BootLimit: 3, Builtin: "1.0.0"}
	if opt.upgradeTo != "" {
		fw, err := firmware.Open(o)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := fw.Boot(); err != nil {
			t.Fatal(err)
		}
		if _, err := fw.InstallFile(context.Background(), opt.kit.Signed(opt.upgradeTo, "sim", 40_000, nil), nil); err != nil {
			t.Fatal(err)
		}
		if err := fw.Activate(fw.State().Active.Other()); err != nil {
			t.Fatal(err)
		}
		fw.Close()
	}
	fw, err := firmware.Open(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fw.Close() })
	if _, err := fw.Boot(); err != nil {
		t.Fatal(err)
	}
	return fw
}

func newFwRig(t *testing.T) (*rig, *firmwaretest.Kit) {
	k := firmwaretest.New(t)
	return newRig(t, rigOption{kit: k}), k
}

// slotSnapshot is both image slots and the boot state.
func (r *rig) slotSnapshot() map[string][]byte {
	m := map[string][]byte{}
	for _, f := range []string{r.areas.ImagePath(flash.Primary), r.areas.ImagePath(flash.Backup), r.areas.BootStatePath()} {
		b, err := os.ReadFile(f)
		if err != nil && !os.IsNotExist(err) {
			r.t.Fatal(err)
		}
		m[f] = b
	}
	return m
}

func (r *rig) sameSlots(before map[string][]byte, what string) {
	r.t.Helper()
	for f, b := range r.slotSnapshot() {
		if !bytes.Equal(b, before[f]) {
			r.t.Errorf("%s: %s changed", what, filepath.Base(f))
		}
	}
}

// curlUpload posts path with `curl -F` and returns status, headers and body.
func (r *rig) curlUpload(a auth, path string) (int, http.Header, []byte) {
	r.t.Helper()
	hdr := filepath.Join(r.t.TempDir(), "headers")
	cmd := exec.Command("curl", "-sS", "-u", a.user+":"+a.pass, "-D", hdr,
		"-F", `UpdateParameters={"Targets":[],"@Redfish.OperationApplyTime":"Immediate"};type=application/json`,
		"-F", "UpdateFile=@"+path+";type=application/octet-stream",
		r.ts.URL+uploadURI)
	out, err := cmd.Output()
	if err != nil {
		r.t.Fatalf("curl: %v\n%s", err, out)
	}
	raw, err := os.ReadFile(hdr)
	if err != nil {
		r.t.Fatal(err)
	}
	// The last response's headers (after a 100 Continue).
	blocks := strings.Split(strings.TrimSpace(strings.ReplaceAll(string(raw), "\r\n", "\n")), "\n\n")
	lines := strings.Split(blocks[len(blocks)-1], "\n")
	var code int
	fmt.Sscanf(lines[0], "HTTP/1.1 %d", &code)
	h := http.Header{}
	for _, l := range lines[1:] {
		if k, v, ok := strings.Cut(l, ":"); ok {
			h.Add(strings.TrimSpace(k), strings.TrimSpace(v))
		}
	}
	return code, h, out
}

func validateBody(t *testing.T, what string, b []byte) {
	t.Helper()
	if err := schemas(t).Validate(b); err != nil {
		t.Errorf("%s: %v\n%s", what, err, b)
	}
}

// waitTask polls the task monitor until the task ends; every answer is
// validated.
func (r *rig) waitTask(monitor string, a auth) map[string]any {
	r.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		x := r.do("GET", monitor, a, "")
		if x.StatusCode != 200 && x.StatusCode != 202 {
			r.t.Fatalf("GET %s: %s\n%s", monitor, x.Status, x.body)
		}
		validateBody(r.t, monitor, x.body)
		m := x.json(r.t)
		if st := m["TaskState"]; st == "Completed" || st == "Exception" {
			if x.StatusCode != 200 {
				r.t.Errorf("monitor of an ended task: %d", x.StatusCode)
			}
			r.get(m["@odata.id"].(string), a) // the Task resource validates too
			return m
		}
		if x.StatusCode != 202 || x.Header.Get("Location") == "" {
			r.t.Errorf("monitor of a running task: %d, Location %q", x.StatusCode, x.Header.Get("Location"))
		}
		time.Sleep(20 * time.Millisecond)
	}
	r.t.Fatalf("task %s did not end", monitor)
	return nil
}

func taskMessage(m map[string]any) string {
	var s []string
	for _, x := range m["Messages"].([]any) {
		s = append(s, x.(map[string]any)["Message"].(string))
	}
	return strings.Join(s, " | ")
}

func slotDoc(r *rig, sl flash.Slot) map[string]any { return r.get(firmwareURI(sl), r.admin()) }

func oemOf(m map[string]any) map[string]any {
	return m["Oem"].(map[string]any)["Cmcd"].(map[string]any)
}

// TestUpdateCurlUploadAndActivate: `curl -F` uploads a signed image as
// operator; the Task goes to Completed with 100 %; the inactive slot shows
// the version as pending and Updateable; a PATCH of the Manager's
// ActiveSoftwareImage selects it for the next boot (If-Match honoured);
// the boot state says so.
func TestUpdateCurlUploadAndActivate(t *testing.T) {
	r, k := newFwRig(t)
	us := r.get(updateURI, r.admin())
	if us["MultipartHttpPushUri"] != uploadURI {
		t.Fatalf("MultipartHttpPushUri %v", us["MultipartHttpPushUri"])
	}
	if us["Actions"].(map[string]any)["#UpdateService.SimpleUpdate"] == nil {
		t.Fatal("no SimpleUpdate action")
	}
	r.get(taskServiceURI, r.admin())
	img := k.Signed("2.0.0", "sim", 300_000, nil)
	code, h, body := r.curlUpload(r.operator(), img)
	if code != 202 {
		t.Fatalf("upload: %d\n%s", code, body)
	}
	validateBody(t, "upload answer", body)
	loc := h.Get("Location")
	if !strings.HasPrefix(loc, taskMonitorsURI+"/") {
		t.Fatalf("Location %q", loc)
	}
	task := r.waitTask(loc, r.operator())
	if task["TaskState"] != "Completed" || task["PercentComplete"].(float64) != 100 || !strings.Contains(taskMessage(task), "2.0.0") {
		t.Fatalf("task: %v", task)
	}
	col := r.get(tasksURI, r.reader())
	if col["Members@odata.count"].(float64) != 1 {
		t.Errorf("tasks: %v", col)
	}

	backup := slotDoc(r, flash.Backup)
	if backup["Version"] != "2.0.0" || backup["Updateable"] != true || oemOf(backup)["ImageState"] != "pending" ||
		backup["Status"].(map[string]any)["State"] != "StandbySpare" {
		t.Fatalf("backup slot: %v", backup)
	}
	primary := slotDoc(r, flash.Primary)
	if primary["Updateable"] != false || primary["Active"] != true || primary["Version"] != "1.0.0" {
		t.Fatalf("primary slot: %v", primary)
	}

	// Activate with If-Match from a GET.
	x := r.do("GET", managerURI, r.admin(), "")
	etag := x.Header.Get("ETag")
	patch := `{"Links":{"ActiveSoftwareImage":{"@odata.id":"` + firmwareURI(flash.Backup) + `"}}}`
	expectError(t, r.do("PATCH", managerURI, r.operator(), patch), 403, "InsufficientPrivilege")
	expectError(t, r.do("PATCH", managerURI, r.admin(), `{"Links":{"ActiveSoftwareImage":{"@odata.id":"/redfish/v1/Nope"}}}`), 400, "PropertyValueNotInList")
	expectError(t, r.do("PATCH", managerURI, r.admin(), `{"Links":{"ManagerInChassis":{"@odata.id":"/x"}}}`), 400, "PropertyNotWritable")
	x = r.do("PATCH", managerURI, r.admin(), patch, "If-Match", etag)
	if x.StatusCode != 200 {
		t.Fatalf("PATCH: %s\n%s", x.Status, x.body)
	}
	validateBody(t, "PATCH answer", x.body)
	m := x.json(t)
	if got := m["Links"].(map[string]any)["ActiveSoftwareImage"].(map[string]any)["@odata.id"]; got != firmwareURI(flash.Backup) {
		t.Fatalf("ActiveSoftwareImage %v", got)
	}
	if st := r.fw.State(); st.NextBoot == nil || *st.NextBoot != flash.Backup {
		t.Fatalf("boot state next boot: %+v", st.NextBoot)
	}
	// The old ETag no longer matches: the link is covered.
	expectError(t, r.do("PATCH", managerURI, r.admin(), patch, "If-Match", etag), 412, "PreconditionFailed")
	if oemOf(slotDoc(r, flash.Backup))["NextBoot"] != true {
		t.Error("backup slot not marked NextBoot")
	}

	// Too large for the slot: 413 before anything is read.
	big := filepath.Join(t.TempDir(), "big.img")
	if err := os.WriteFile(big, make([]byte, rigDevice.Size+multipartSlack+1), 0o600); err != nil {
		t.Fatal(err)
	}
	before := r.slotSnapshot()
	if code, _, body := r.curlUpload(r.operator(), big); code != 413 {
		t.Fatalf("oversized upload: %d\n%s", code, body)
	}
	r.sameSlots(before, "oversized upload")
}

// TestUpdateGofishUpload uploads with gofish's multipart client and reads
// the Task and the inventory with gofish.
func TestUpdateGofishUpload(t *testing.T) {
	r, k := newFwRig(t)
	c, err := gofish.Connect(gofish.ClientConfig{Endpoint: r.ts.URL, Username: "operator", Password: operatorPW, BasicAuth: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Logout()
	us, err := c.Service.UpdateService()
	if err != nil {
		t.Fatal(err)
	}
	if us.MultipartHTTPPushURI != uploadURI {
		t.Fatalf("gofish MultipartHttpPushUri %q", us.MultipartHTTPPushURI)
	}
	f, err := os.Open(k.Signed("3.1.4", "sim", 200_000, nil))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	res, err := c.PostMultipart(us.MultipartHTTPPushURI, map[string]io.Reader{
		"UpdateParameters": strings.NewReader(`{"Targets":["` + firmwareURI(flash.Backup) + `"]}`),
		"UpdateFile":       f,
	})
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 202 {
		t.Fatalf("gofish upload: %s", res.Status)
	}
	task := r.waitTask(res.Header.Get("Location"), r.operator())
	if task["TaskState"] != "Completed" {
		t.Fatalf("task %v", task)
	}
	inv, err := us.FirmwareInventory()
	if err != nil {
		t.Fatal(err)
	}
	var found bool
	for _, sw := range inv {
		if sw.ID == "Backup" {
			found = sw.Version == "3.1.4" && sw.Updateable
		}
	}
	if !found {
		t.Fatalf("gofish inventory has no updateable Backup 3.1.4: %+v", inv)
	}
}

// TestUpdateRefused: unsigned, wrongly signed, wrong-board and truncated
// images answer 400 with the reason; each Task is an Exception with the
// reason; neither slot nor the boot state changes.
func TestUpdateRefused(t *testing.T) {
	r, k := newFwRig(t)
	good := k.Signed("4.0.0", "sim", 100_000, nil)
	raw, _ := os.ReadFile(good)
	trunc := filepath.Join(t.TempDir(), "trunc.img")
	os.WriteFile(trunc, raw[:len(raw)-1000], 0o600)
	cases := []struct{ name, path, reason string }{
		{"unsigned", k.Unsigned("4.0.1", "sim", 100_000), "not signed"},
		{"wrong key", k.Signed("4.0.2", "sim", 100_000, firmwaretest.OtherKey(t)), "key this board does not trust"},
		{"wrong board", k.Signed("4.0.3", "other-board", 100_000, nil), "another board"},
		{"truncated", trunc, "truncated"},
	}
	before := r.slotSnapshot()
	for _, tc := range cases {
		code, h, body := r.curlUpload(r.operator(), tc.path)
		if code != 400 || !strings.Contains(string(body), tc.reason) {
			t.Errorf("%s: %d %s", tc.name, code, body)
			continue
		}
		if err := schemas(t).ValidateAgainst(body, rfschema.ErrorSchema); err != nil {
			t.Errorf("%s: error body: %v", tc.name, err)
		}
		task := r.waitTask(h.Get("Location"), r.operator())
		if task["TaskState"] != "Exception" || task["TaskStatus"] != "Critical" || !strings.Contains(taskMessage(task), tc.reason) {
			t.Errorf("%s: task %v", tc.name, task)
		}
	}
	r.sameSlots(before, "refused uploads")
	if b := slotDoc(r, flash.Backup); oemOf(b)["ImageState"] != "empty" {
		t.Errorf("backup after refusals: %v", b)
	}
	// Not multipart, no file part, unknown part, bad parameters.
	expectError(t, r.do("POST", uploadURI, r.operator(), `{"ImageURI":"x"}`), 415, "HeaderInvalid")
	for _, tc := range []struct {
		parts map[string]string
		id    string
	}{
		{map[string]string{"UpdateParameters": `{}`}, "ActionParameterMissing"},
		{map[string]string{"Bogus": `x`}, "ActionParameterUnknown"},
		{map[string]string{"UpdateParameters": `{"Targets":["` + firmwareURI(flash.Primary) + `"]}`}, "ActionParameterValueNotInList"},
		{map[string]string{"UpdateParameters": `{"@Redfish.OperationApplyTime":"OnReset"}`}, "ActionParameterValueNotInList"},
		{map[string]string{"UpdateParameters": `[1`}, "MalformedJSON"},
	} {
		var buf bytes.Buffer
		mw := multipart.NewWriter(&buf)
		for k, v := range tc.parts {
			w, _ := mw.CreateFormField(k)
			w.Write([]byte(v))
		}
		mw.Close()
		x := r.do("POST", uploadURI, r.operator(), buf.String(), "Content-Type", mw.FormDataContentType())
		expectError(t, x, 400, tc.id)
	}
	r.sameSlots(before, "bad requests")
}

// startSlowUpload starts an upload whose second half the test sends
// with finish; it returns once the install is running.
func startSlowUpload(t *testing.T, r *rig, img string) (finish func(), done chan *http.Response) {
	t.Helper()
	raw, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	pr, pw := io.Pipe()
	mw := multipart.NewWriter(pw)
	req, _ := http.NewRequest("POST", r.ts.URL+uploadURI, pr)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	a := r.operator()
	req.SetBasicAuth(a.user, a.pass)
	done = make(chan *http.Response, 1)
	go func() {
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Error(err)
			close(done)
			return
		}
		done <- res
	}()
	w, _ := mw.CreateFormFile("UpdateFile", "slow.img")
	if _, err := w.Write(raw[:len(raw)/2]); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for busy, _ := r.fw.Busy(); !busy; busy, _ = r.fw.Busy() {
		if time.Now().After(deadline) {
			t.Fatal("the first upload is not running")
		}
		time.Sleep(5 * time.Millisecond)
	}
	return func() {
		if _, err := w.Write(raw[len(raw)/2:]); err != nil {
			t.Error(err)
		}
		mw.Close()
		pw.Close()
	}, done
}

// TestUpdateBusy: a second upload (and a SimpleUpdate, and an activation)
// while one runs gets 503 with Retry-After; the first completes.
func TestUpdateBusy(t *testing.T) {
	r, k := newFwRig(t)
	finish, done := startSlowUpload(t, r, k.Signed("5.0.0", "sim", 400_000, nil))
	second := k.Signed("5.0.1", "sim", 10_000, nil)
	code, h, body := r.curlUpload(r.operator(), second)
	if code != 503 || h.Get("Retry-After") == "" || !strings.Contains(string(body), "ServiceTemporarilyUnavailable") {
		t.Fatalf("second upload: %d %v %s", code, h, body)
	}
	x := r.do("POST", simpleUpdateURI, r.operator(), `{"ImageURI":"file://`+second+`"}`)
	expectError(t, x, 503, "ServiceTemporarilyUnavailable")
	if x.Header.Get("Retry-After") == "" {
		t.Error("SimpleUpdate 503 without Retry-After")
	}
	if us := r.get(updateURI, r.reader()); us["Status"].(map[string]any)["State"] != "Updating" {
		t.Errorf("UpdateService while busy: %v", us["Status"])
	}
	finish()
	res := <-done
	if res == nil {
		t.FailNow()
	}
	res.Body.Close()
	if res.StatusCode != 202 {
		t.Fatalf("first upload: %s", res.Status)
	}
	if task := r.waitTask(res.Header.Get("Location"), r.operator()); task["TaskState"] != "Completed" {
		t.Fatalf("first task %v", task)
	}
	if v := slotDoc(r, flash.Backup)["Version"]; v != "5.0.0" {
		t.Fatalf("backup version %v", v)
	}
}

// TestUpdateSimpleUpdate: file:// and absolute paths install; remote
// schemes, relative paths and network parameters are refused.
func TestUpdateSimpleUpdate(t *testing.T) {
	r, k := newFwRig(t)
	img := k.Signed("6.0.0", "sim", 50_000, nil)
	before := r.slotSnapshot()
	for _, tc := range []struct {
		body, id string
	}{
		{`{"ImageURI":"https://example.com/cmcd.img"}`, "ActionParameterNotSupported"},
		{`{"ImageURI":"tftp://10.0.0.1/cmcd.img"}`, "ActionParameterNotSupported"},
		{`{"ImageURI":"images/cmcd.img"}`, "ActionParameterValueFormatError"},
		{`{"ImageURI":"file://host/x.img"}`, "ActionParameterValueFormatError"},
		{`{"ImageURI":"` + img + `","TransferProtocol":"HTTP"}`, "ActionParameterNotSupported"},
		{`{}`, "ActionParameterMissing"},
		{`{"ImageURI":7}`, "ActionParameterValueTypeError"},
		{`{"ImageURI":"` + img + `","Foo":1}`, "ActionParameterUnknown"},
	} {
		expectError(t, r.do("POST", simpleUpdateURI, r.operator(), tc.body), 400, tc.id)
	}
	x := r.do("POST", simpleUpdateURI, r.operator(), `{"ImageURI":"`+k.Unsigned("6.0.1", "sim", 1000)+`"}`)
	expectError(t, x, 400, "GeneralError")
	r.sameSlots(before, "refused SimpleUpdates")
	x = r.do("POST", simpleUpdateURI, r.operator(), `{"ImageURI":"file://`+img+`"}`)
	if x.StatusCode != 202 {
		t.Fatalf("SimpleUpdate: %s\n%s", x.Status, x.body)
	}
	validateBody(t, "SimpleUpdate answer", x.body)
	if task := r.waitTask(x.Header.Get("Location"), r.operator()); task["TaskState"] != "Completed" {
		t.Fatalf("task %v", task)
	}
	if v := slotDoc(r, flash.Backup)["Version"]; v != "6.0.0" {
		t.Fatalf("backup version %v", v)
	}
}

// TestUpdateReadOnly: a ReadOnly account can read the service and tasks
// but not upload, update, activate or answer the choice.
func TestUpdateReadOnly(t *testing.T) {
	r, k := newFwRig(t)
	before := r.slotSnapshot()
	code, _, body := r.curlUpload(r.reader(), k.Signed("7.0.0", "sim", 10_000, nil))
	if code != 403 {
		t.Fatalf("reader upload: %d %s", code, body)
	}
	expectError(t, r.do("POST", simpleUpdateURI, r.reader(), `{"ImageURI":"/x.img"}`), 403, "InsufficientPrivilege")
	expectError(t, r.do("PATCH", managerURI, r.reader(), `{"Links":{"ActiveSoftwareImage":{"@odata.id":"`+firmwareURI(flash.Backup)+`"}}}`), 403, "InsufficientPrivilege")
	expectError(t, r.do("POST", dataChoiceURI, r.reader(), `{"Choice":"Keep"}`), 403, "InsufficientPrivilege")
	r.sameSlots(before, "read-only requests")
	r.get(tasksURI, r.reader())
	// Activating a slot with no image is refused with the reason.
	x := r.do("PATCH", managerURI, r.admin(), `{"Links":{"ActiveSoftwareImage":{"@odata.id":"`+firmwareURI(flash.Backup)+`"}}}`)
	expectError(t, x, 400, "PropertyValueIncorrect")
	if !strings.Contains(string(x.body), "no bootable image") {
		t.Errorf("activation of an empty slot: %s", x.body)
	}
	r.sameSlots(before, "refused activation")
}

// TestUpdateDataChoice: after an upgrade boots, the Manager shows the
// pending choice and its action; bad answers are refused; Keep is applied,
// the action disappears, an event is published and a second answer gets
// 409.
func TestUpdateDataChoice(t *testing.T) {
	k := firmwaretest.New(t)
	r := newRig(t, rigOption{kit: k, upgradeTo: "8.0.0"})
	m := r.get(managerURI, r.admin())
	dc := oemOf(m)["DataChoice"].(map[string]any)
	if dc["Pending"] != true || dc["Version"] != "8.0.0" || dc["Since"] == "" {
		t.Fatalf("DataChoice %v", dc)
	}
	act := m["Actions"].(map[string]any)["Oem"].(map[string]any)["#Cmcd.DataChoice"].(map[string]any)
	if act["target"] != dataChoiceURI {
		t.Fatalf("action %v", act)
	}
	// While the new image is on trial, the inventory says so and nothing
	// can be installed.
	if b := slotDoc(r, flash.Backup); b["Active"] != true || b["Version"] != "8.0.0" {
		t.Fatalf("running backup slot %v", b)
	}
	expectError(t, r.do("POST", dataChoiceURI, r.admin(), `{"Choice":"Maybe"}`), 400, "ActionParameterValueNotInList")
	expectError(t, r.do("POST", dataChoiceURI, r.admin(), `{}`), 400, "ActionParameterMissing")
	expectError(t, r.do("POST", dataChoiceURI, r.admin(), `{"Choice":"Keep","X":1}`), 400, "ActionParameterUnknown")
	sse, res := r.openSSE(r.admin())
	if sse == nil {
		t.Fatalf("event stream: %s", res.Status)
	}
	x := r.do("POST", dataChoiceURI, r.admin(), `{"Choice":"Keep"}`)
	if x.StatusCode != 200 {
		t.Fatalf("answer: %s\n%s", x.Status, x.body)
	}
	m = r.get(managerURI, r.admin())
	dc = oemOf(m)["DataChoice"].(map[string]any)
	if dc["Pending"] != false || dc["Answer"] != "Keep" || dc["AnsweredBy"] != "admin" {
		t.Fatalf("after answer: %v", dc)
	}
	if _, ok := m["Actions"].(map[string]any)["Oem"].(map[string]any)["#Cmcd.DataChoice"]; ok {
		t.Fatal("action still advertised")
	}
	expectError(t, r.do("POST", dataChoiceURI, r.admin(), `{"Choice":"Restore"}`), 409, "ActionNotSupported")
	// The answer is published on the event stream (from the event log).
	for i := 0; ; i++ {
		rec := checkEvent(t, sse.next(t, 30*time.Second))
		if rec["MessageId"] == cmcdRegistry+".DataChoiceAnswered" {
			if msg := rec["Message"].(string); !strings.Contains(msg, "8.0.0") || !strings.Contains(msg, "kept") {
				t.Fatalf("event message %q", msg)
			}
			break
		}
		if i > 50 {
			t.Fatal("no DataChoiceAnswered event")
		}
	}
}

// TestUploadStreams: a 24 MiB upload does not pass through memory: the
// heap (GC at 5 % and a soft memory limit a quarter of the image above the
// start, so it stays close to the live data) sampled during the upload,
// verification, write and read-back never grows by half the image (curl is
// a separate process, so the heap is the server's). An image buffered in
// memory adds at least its own size; a streamed one measures 1.6-3 MB here
// and up to 8.4 MB when CI starves the collector of CPU.
func TestUploadStreams(t *testing.T) {
	k := firmwaretest.New(t)
	r := newRig(t, rigOption{kit: k, device: flash.DeviceInfo{Size: 32 << 20, EraseSize: 64 << 10, WriteSize: 1}})
	const size = 24 << 20
	img := k.Signed("10.0.0", "sim", size, nil)
	// Collect garbage (the flash simulation's per-block buffers) eagerly,
	// so that the heap measures what is live.
	defer debug.SetGCPercent(debug.SetGCPercent(5))
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapAlloc
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(int64(ms.Sys) + size/4))
	stop := make(chan struct{})
	peak := make(chan uint64)
	go func() {
		var max uint64
		for {
			select {
			case <-stop:
				peak <- max
				return
			case <-time.After(2 * time.Millisecond):
			}
			var m runtime.MemStats
			runtime.ReadMemStats(&m)
			if m.HeapAlloc > max {
				max = m.HeapAlloc
			}
		}
	}()
	code, h, body := r.curlUpload(r.operator(), img)
	if code != 202 {
		t.Fatalf("upload: %d %s", code, body)
	}
	task := r.waitTask(h.Get("Location"), r.operator())
	close(stop)
	p := <-peak
	if task["TaskState"] != "Completed" {
		t.Fatalf("task %v", task)
	}
	grow := int64(p) - int64(base)
	t.Logf("SUMMARY upload of a %d-byte image: server heap peak +%d bytes (%.1f%% of the image)", size, grow, float64(grow)*100/size)
	if grow > size/2 {
		t.Fatalf("the heap grew by %d bytes during a %d-byte upload: the image is buffered in memory", grow, size)
	}
}
