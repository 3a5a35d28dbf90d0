package redfish

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"cmcd/firmware"
	"cmcd/flash"
)

// Firmware updates (R4) on top of package firmware:
//
//   - UpdateService.MultipartHttpPushUri (uploadURI): multipart/form-data
//     with an "UpdateParameters" JSON part and an "UpdateFile" part
//     (DSP0266 "Multipart HTTP push updates"); the file part streams into
//     firmware.Service.Install (which spools it to its staging area while
//     it verifies), never into memory. The body limit is the inactive
//     slot's size plus room for the multipart framing, not MaxBody.
//     UpdateParameters is checked when it precedes the file (as DSP0266
//     orders the parts); parts after the file are ignored.
//   - #UpdateService.SimpleUpdate: ImageURI is a file on the board
//     (file:///path or /path); remote schemes are refused.
//   - Each update is a Task (TaskService/Tasks/{id}) with its monitor.
//     The request answers once the image is received and verified: 202
//     Accepted, Location = the task monitor, body = the Task, which goes on
//     through erasing, writing and read-back to Completed or Exception. A
//     refused image answers 400 (the reason in the message) and its Task
//     is an Exception with the same reason. An update while one runs: 503
//     with Retry-After.
//   - PATCH of the Manager's Links.ActiveSoftwareImage selects the slot
//     that boots next (firmware.Service.Activate); the link shows that
//     slot.
//   - The post-upgrade keep-or-restore choice (S5): Manager
//     Oem.Cmcd.DataChoice and, while it is pending, the action
//     #Cmcd.DataChoice {"Choice": "Keep"|"Restore"}.

const (
	taskServiceURI  = "/redfish/v1/TaskService"
	tasksURI        = taskServiceURI + "/Tasks"
	taskMonitorsURI = taskServiceURI + "/TaskMonitors"
	uploadURI       = updateURI + "/upload"
	simpleUpdateURI = updateURI + "/Actions/UpdateService.SimpleUpdate"
	dataChoiceURI   = managerURI + "/Actions/Oem/Cmcd.DataChoice"

	// MaxTasks is how many tasks TaskService keeps (the oldest finished
	// ones are dropped first).
	MaxTasks = 32
	// UpdateRetryAfter is the Retry-After (seconds) of a 503 for an update
	// while one runs.
	UpdateRetryAfter = 30
	// multipartSlack is what an upload may carry beyond the slot's size:
	// boundaries, part headers and the UpdateParameters part.
	multipartSlack = 256 << 10
	// maxParams bounds the UpdateParameters part.
	maxParams = 16 << 10
)

var updateMessages = map[string]cmcdMessage{
	"ImageInstalled": {
		description: "A firmware image was installed into the inactive slot, read back and verified.",
		message:     "Image %1 was installed into the %2 slot, read back and verified; select it as the Manager's ActiveSoftwareImage to boot it.",
		severity:    "OK", args: []string{"string", "string"},
		argDescs:   []string{"The image version.", "The slot."},
		resolution: "None.",
	},
	"ImageRefused": {
		description: "A firmware image failed verification; nothing on either slot changed.",
		message:     "The image was refused: %1",
		severity:    "Critical", args: []string{"string"},
		argDescs:   []string{"Which check failed."},
		resolution: "Build the image for this board, sign it with a key the board trusts, and upload it again.",
	},
	"UpdateFailed": {
		description: "A firmware update failed after its image was accepted.",
		message:     "The update failed: %1",
		severity:    "Critical", args: []string{"string"},
		argDescs:   []string{"What failed."},
		resolution: "See the message; the slot that was written is marked bad, the running image is untouched. Upload the image again.",
	},
	"DataChoicePending": {
		description: "After a firmware upgrade, the keep-or-restore choice for the data area waits for an answer.",
		message:     "%1",
		severity:    "Warning", args: []string{"string"},
		argDescs:   []string{"The upgrade and the question."},
		resolution: "Answer with the Manager's #Cmcd.DataChoice action (or on the page).",
	},
	"DataChoiceAnswered": {
		description: "The post-upgrade keep-or-restore choice was answered and applied.",
		message:     "%1",
		severity:    "OK", args: []string{"string"},
		argDescs:   []string{"The answer and what was done."},
		resolution: "None.",
	},
}

var updateBaseMessages = map[string]baseMessage{
	"ActionParameterNotSupported":     {"The parameter %1 for the action %2 is not supported on the target resource.", "Warning", "Remove the parameter supplied and resubmit the request if the operation failed."},
	"ActionParameterValueFormatError": {"The value '%1' for the parameter %2 in the action %3 is not a format that the parameter can accept.", "Warning", "Correct the value for the parameter in the request body and resubmit the request if the operation failed."},
	"ResourceInUse":                   {"The change to the requested resource failed because the resource is in use or in transition.", "Warning", "Remove the condition and resubmit the request if the operation failed."},
}

func init() {
	for k, v := range updateMessages {
		cmcdMessages[k] = v
	}
	for k, v := range updateBaseMessages {
		baseMessages[k] = v
	}
	metadataNamespaces = append(metadataNamespaces, [][2]string{
		{"TaskService", "v1_3_0"}, {"TaskCollection", ""}, {"Task", "v1_7_4"}}...)
}

// cmcdMsg is a Message object of the Cmcd registry (Task.Messages).
func cmcdMsg(id string, args ...string) obj {
	m := cmcdMessages[id]
	if args == nil {
		args = []string{}
	}
	return obj{
		"@odata.type":     "#Message.v1_3_0.Message",
		"MessageId":       cmcdRegistry + "." + id,
		"Message":         cmcdMessageText(id, args),
		"MessageArgs":     args,
		"MessageSeverity": m.severity,
		"Resolution":      m.resolution,
	}
}

// ---- tasks ------------------------------------------------------------

type task struct {
	id, name, target string
	state            string // New, Running, Completed, Exception
	percent          int
	phase            string
	start, end       time.Time
	messages         []obj
}

type taskStore struct {
	mu    sync.Mutex
	seq   int
	tasks []*task // oldest first
}

func (s *Server) newTask(name, target string) *task {
	ts := &s.tasks
	ts.mu.Lock()
	defer ts.mu.Unlock()
	ts.seq++
	t := &task{id: strconv.Itoa(ts.seq), name: name, target: target, state: "New", start: s.now()}
	if len(ts.tasks) >= MaxTasks {
		for i, old := range ts.tasks {
			if old.state == "Completed" || old.state == "Exception" {
				ts.tasks = append(ts.tasks[:i:i], ts.tasks[i+1:]...)
				break
			}
		}
	}
	ts.tasks = append(ts.tasks, t)
	return t
}

func (s *Server) findTask(id string) (*task, bool) {
	s.tasks.mu.Lock()
	defer s.tasks.mu.Unlock()
	for _, t := range s.tasks.tasks {
		if t.id == id {
			return t, true
		}
	}
	return nil, false
}

func (s *Server) taskProgress(t *task, p firmware.Progress) {
	s.tasks.mu.Lock()
	defer s.tasks.mu.Unlock()
	if t.state == "New" {
		t.state = "Running"
	}
	t.percent, t.phase = p.Overall, p.Phase
}

// taskFinish ends a task with the install's outcome.
func (s *Server) taskFinish(t *task, res *firmware.InstallResult, err error) {
	var refused *firmware.RefusedError
	s.tasks.mu.Lock()
	defer s.tasks.mu.Unlock()
	t.end = s.now()
	switch {
	case err == nil:
		t.state, t.percent, t.phase = "Completed", 100, "done"
		t.messages = append(t.messages, cmcdMsg("ImageInstalled", res.Image.Version, res.Slot.String()))
	case errors.As(err, &refused):
		t.state = "Exception"
		t.messages = append(t.messages, cmcdMsg("ImageRefused", strings.TrimPrefix(refused.Error(), "image refused: ")))
	default:
		t.state = "Exception"
		t.messages = append(t.messages, cmcdMsg("UpdateFailed", err.Error()))
	}
}

func (s *Server) taskDoc(t *task) obj {
	s.tasks.mu.Lock()
	defer s.tasks.mu.Unlock()
	msgs := make([]any, len(t.messages))
	for i, m := range t.messages {
		msgs[i] = m
	}
	status := "OK"
	if t.state == "Exception" {
		status = "Critical"
	}
	doc := obj{
		"@odata.id":       tasksURI + "/" + t.id,
		"@odata.type":     "#Task.v1_7_4.Task",
		"Id":              t.id,
		"Name":            t.name,
		"TaskState":       t.state,
		"TaskStatus":      status,
		"StartTime":       rfTime(t.start),
		"PercentComplete": t.percent,
		"TaskMonitor":     taskMonitorsURI + "/" + t.id,
		"Messages":        msgs,
		"HidePayload":     false,
		"Payload":         obj{"HttpOperation": "POST", "TargetUri": t.target, "HttpHeaders": []string{}, "JsonBody": ""},
		"Oem":             obj{"Cmcd": obj{"Phase": t.phase}},
	}
	if !t.end.IsZero() {
		doc["EndTime"] = rfTime(t.end)
	}
	return doc
}

func (s *Server) getTaskService(c *ctx) (any, error) {
	return obj{
		"@odata.id":                       taskServiceURI,
		"@odata.type":                     "#TaskService.v1_3_0.TaskService",
		"Id":                              "TaskService",
		"Name":                            "CMC Task Service",
		"Description":                     "The firmware updates (uploads and SimpleUpdate), one Task each.",
		"ServiceEnabled":                  true,
		"Status":                          status("OK"),
		"CompletedTaskOverWritePolicy":    "Oldest",
		"LifeCycleEventOnTaskStateChange": false,
		"Tasks":                           odataID(tasksURI),
	}, nil
}

func (s *Server) getTasks(c *ctx) (any, error) {
	s.tasks.mu.Lock()
	members := make([]any, len(s.tasks.tasks))
	for i, t := range s.tasks.tasks {
		members[i] = odataID(tasksURI + "/" + t.id)
	}
	s.tasks.mu.Unlock()
	return collection(tasksURI, "#TaskCollection.TaskCollection", "Tasks", members), nil
}

func (s *Server) getTask(c *ctx) (any, error) {
	t, ok := s.findTask(c.param("id"))
	if !ok {
		return nil, notFound("Task", c.param("id"))
	}
	return s.taskDoc(t), nil
}

// getTaskMonitor answers 202 with the Task while it runs, 200 with the
// Task once it has ended (Completed or Exception).
func (s *Server) getTaskMonitor(c *ctx) (any, error) {
	t, ok := s.findTask(c.param("id"))
	if !ok {
		return nil, notFound("TaskMonitor", c.param("id"))
	}
	doc := s.taskDoc(t)
	code := http.StatusOK
	if st := doc["TaskState"]; st == "New" || st == "Running" {
		code = http.StatusAccepted
		c.w.Header().Set("Location", taskMonitorsURI+"/"+t.id)
		c.w.Header().Set("Retry-After", "1")
	}
	b, err := json.Marshal(doc)
	if err != nil {
		return nil, err
	}
	c.w.Header().Set("Content-Type", "application/json; charset=utf-8")
	c.w.WriteHeader(code)
	if c.r.Method != http.MethodHead {
		c.w.Write(b)
	}
	return streamed{}, nil
}

// ---- UpdateService ----------------------------------------------------

// uploadLimit is the body limit of uploads: the inactive slot's size and
// the multipart framing.
func (s *Server) uploadLimit() int64 {
	n, err := s.fw.MaxImageSize()
	if err != nil {
		return MaxBody
	}
	return n + multipartSlack
}

func errBusy() *Error {
	return &Error{Status: http.StatusServiceUnavailable, MessageID: "ServiceTemporarilyUnavailable",
		Args: []string{strconv.Itoa(UpdateRetryAfter)}, Resolution: "An update is in progress; retry when its Task has ended."}
}

// startInstall runs install in the background as task t and waits until
// the image has been received and verified (the install leaves the
// "receiving" phase) or the install ended. It then answers: 202 with the
// task, or the error of an install that ended early.
func (s *Server) startInstall(c *ctx, t *task, install func(context.Context, func(firmware.Progress)) (*firmware.InstallResult, error)) error {
	received := make(chan struct{})
	var once sync.Once
	ended := make(chan error, 1)
	progress := func(p firmware.Progress) {
		s.taskProgress(t, p)
		if p.Phase != "receiving" {
			once.Do(func() { close(received) })
		}
	}
	// The install outlives the request: it must not end with it.
	ictx := context.WithoutCancel(c.r.Context())
	go func() {
		res, err := install(ictx, progress)
		s.taskFinish(t, res, err)
		if err == nil {
			s.log.Info("redfish: firmware image installed", "task", t.id, "slot", res.Slot, "version", res.Image.Version, "by", c.account.Username)
		} else {
			s.log.Warn("redfish: firmware update failed", "task", t.id, "err", err, "by", c.account.Username)
		}
		ended <- err
		once.Do(func() { close(received) })
	}()
	<-received
	select {
	case err := <-ended:
		if err != nil {
			c.w.Header().Set("Location", taskMonitorsURI+"/"+t.id)
			return installError(err)
		}
	default:
	}
	c.w.Header().Set("Location", taskMonitorsURI+"/"+t.id)
	s.reply(c, http.StatusAccepted, s.taskDoc(t))
	return nil
}

// installError maps an install that ended before its image was accepted.
func installError(err error) error {
	var refused *firmware.RefusedError
	switch {
	case errors.As(err, &refused):
		return &Error{Status: http.StatusBadRequest, MessageID: "GeneralError", Resolution: refused.Error() + "; nothing on either slot changed."}
	case errors.Is(err, firmware.ErrBusy):
		return errBusy()
	case errors.Is(err, firmware.ErrOnTrial):
		return &Error{Status: http.StatusConflict, MessageID: "ResourceInUse", Resolution: err.Error()}
	}
	return &Error{Status: http.StatusInternalServerError, MessageID: "GeneralError", Resolution: err.Error()}
}

// postUpload is the MultipartHttpPushUri.
func (s *Server) postUpload(c *ctx) error {
	if busy, _ := s.fw.Busy(); busy {
		c.w.Header().Set("Retry-After", strconv.Itoa(UpdateRetryAfter))
		return errBusy()
	}
	mt, _, _ := mime.ParseMediaType(c.r.Header.Get("Content-Type"))
	if mt != "multipart/form-data" {
		return &Error{Status: http.StatusUnsupportedMediaType, MessageID: "HeaderInvalid", Args: []string{"Content-Type: " + c.r.Header.Get("Content-Type")},
			Resolution: "Send the image as multipart/form-data with the parts UpdateParameters (JSON) and UpdateFile."}
	}
	mr, err := c.r.MultipartReader()
	if err != nil {
		return &Error{Status: http.StatusBadRequest, MessageID: "HeaderInvalid", Args: []string{"Content-Type"}, Resolution: err.Error()}
	}
	for {
		part, err := mr.NextPart()
		if err == io.EOF {
			return &Error{Status: http.StatusBadRequest, MessageID: "ActionParameterMissing", Args: []string{"MultipartHttpPushUri", "UpdateFile"}}
		}
		if err != nil {
			return bodyReadError(err)
		}
		switch part.FormName() {
		case "UpdateParameters":
			if err := s.checkUpdateParams(part); err != nil {
				return err
			}
		case "OemParameters":
			if _, err := io.Copy(io.Discard, io.LimitReader(part, maxParams)); err != nil {
				return bodyReadError(err)
			}
		case "UpdateFile":
			name := part.FileName()
			if name == "" {
				name = "image"
			}
			t := s.newTask("Firmware upload "+filepath.Base(name), uploadURI)
			err := s.startInstall(c, t, func(ctx context.Context, p func(firmware.Progress)) (*firmware.InstallResult, error) {
				return s.fw.Install(ctx, part, p)
			})
			if err != nil {
				if e, ok := err.(*Error); ok && e.Status == http.StatusServiceUnavailable {
					c.w.Header().Set("Retry-After", strconv.Itoa(UpdateRetryAfter))
				}
				// Let the client finish sending so it reads the answer.
				io.Copy(io.Discard, c.r.Body)
				return err
			}
			// Parts after the file are not read: the install has started.
			// DSP0266 puts UpdateParameters first; one sent after the file
			// (gofish orders parts at random) is ignored.
			return nil
		default:
			return &Error{Status: http.StatusBadRequest, MessageID: "ActionParameterUnknown", Args: []string{"MultipartHttpPushUri", part.FormName()}}
		}
	}
}

func bodyReadError(err error) error {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return errTooLarge
	}
	return &Error{Status: http.StatusBadRequest, MessageID: "GeneralError", Resolution: "The multipart body could not be read: " + err.Error()}
}

// checkUpdateParams checks the UpdateParameters part: Targets (empty, or
// the inactive slot's inventory URI) and @Redfish.OperationApplyTime
// (Immediate: the image is written now and activated by a PATCH of the
// Manager's ActiveSoftwareImage).
func (s *Server) checkUpdateParams(r io.Reader) error {
	b, err := io.ReadAll(io.LimitReader(r, maxParams+1))
	if err != nil {
		return bodyReadError(err)
	}
	if len(b) > maxParams {
		return errTooLarge
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil || m == nil {
		return &Error{Status: http.StatusBadRequest, MessageID: "MalformedJSON", Resolution: "The UpdateParameters part must be a JSON object."}
	}
	for _, k := range sortedKeys(m) {
		switch k {
		case "Targets":
			var targets []string
			if err := json.Unmarshal(m[k], &targets); err != nil {
				return &Error{Status: http.StatusBadRequest, MessageID: "ActionParameterValueTypeError", Args: []string{string(m[k]), "Targets", "MultipartHttpPushUri"}}
			}
			want := firmwareURI(s.fw.State().Active.Other())
			for _, tg := range targets {
				if tg != want {
					return &Error{Status: http.StatusBadRequest, MessageID: "ActionParameterValueNotInList", Args: []string{tg, "Targets", "MultipartHttpPushUri"},
						Resolution: "An update writes only the inactive slot: omit Targets or give " + want + "."}
				}
			}
		case "@Redfish.OperationApplyTime":
			var at string
			if json.Unmarshal(m[k], &at) != nil || at != "Immediate" {
				return &Error{Status: http.StatusBadRequest, MessageID: "ActionParameterValueNotInList", Args: []string{string(m[k]), k, "MultipartHttpPushUri"},
					Resolution: "Only Immediate is supported: the image is written now; PATCH the Manager's Links.ActiveSoftwareImage to boot it."}
			}
		case "Oem":
		default:
			return &Error{Status: http.StatusBadRequest, MessageID: "ActionParameterUnknown", Args: []string{"MultipartHttpPushUri", k}}
		}
	}
	return nil
}

// localImagePath turns SimpleUpdate's ImageURI into a path on the board:
// file:///abs/path or /abs/path. Remote schemes are not supported.
func localImagePath(uri string) (string, error) {
	const action = "SimpleUpdate"
	if strings.HasPrefix(uri, "/") {
		return filepath.Clean(uri), nil
	}
	u, err := url.Parse(uri)
	if err != nil || u.Scheme == "" {
		return "", &Error{Status: http.StatusBadRequest, MessageID: "ActionParameterValueFormatError", Args: []string{uri, "ImageURI", action},
			Resolution: "Give the image's absolute path on the board, as /path/to/image or file:///path/to/image."}
	}
	if !strings.EqualFold(u.Scheme, "file") {
		return "", &Error{Status: http.StatusBadRequest, MessageID: "ActionParameterNotSupported", Args: []string{"ImageURI (scheme " + u.Scheme + ")", action},
			Resolution: "This service does not fetch images over the network: copy the image to the board and give its path (file:///path), or upload it to " + uploadURI + "."}
	}
	if u.Host != "" && u.Host != "localhost" || !strings.HasPrefix(u.Path, "/") {
		return "", &Error{Status: http.StatusBadRequest, MessageID: "ActionParameterValueFormatError", Args: []string{uri, "ImageURI", action},
			Resolution: "A file URI names a path on this board: file:///path/to/image."}
	}
	return filepath.Clean(u.Path), nil
}

func (s *Server) postSimpleUpdate(c *ctx) error {
	const action = "SimpleUpdate"
	body, err := c.body()
	if err != nil {
		return err
	}
	var uri string
	for _, k := range sortedKeys(body) {
		switch k {
		case "ImageURI":
			if json.Unmarshal(body[k], &uri) != nil {
				return &Error{Status: http.StatusBadRequest, MessageID: "ActionParameterValueTypeError", Args: []string{string(body[k]), k, action}}
			}
		case "Targets":
			var targets []string
			if json.Unmarshal(body[k], &targets) != nil {
				return &Error{Status: http.StatusBadRequest, MessageID: "ActionParameterValueTypeError", Args: []string{string(body[k]), k, action}}
			}
			want := firmwareURI(s.fw.State().Active.Other())
			for _, tg := range targets {
				if tg != want {
					return &Error{Status: http.StatusBadRequest, MessageID: "ActionParameterValueNotInList", Args: []string{tg, k, action},
						Resolution: "An update writes only the inactive slot: omit Targets or give " + want + "."}
				}
			}
		case "TransferProtocol", "Username", "Password":
			return &Error{Status: http.StatusBadRequest, MessageID: "ActionParameterNotSupported", Args: []string{k, action},
				Resolution: "ImageURI names a file on the board (file:///path); nothing is fetched over the network."}
		default:
			return &Error{Status: http.StatusBadRequest, MessageID: "ActionParameterUnknown", Args: []string{action, k}}
		}
	}
	if uri == "" {
		return &Error{Status: http.StatusBadRequest, MessageID: "ActionParameterMissing", Args: []string{action, "ImageURI"}}
	}
	path, err := localImagePath(uri)
	if err != nil {
		return err
	}
	if busy, _ := s.fw.Busy(); busy {
		c.w.Header().Set("Retry-After", strconv.Itoa(UpdateRetryAfter))
		return errBusy()
	}
	t := s.newTask("Firmware update from "+path, simpleUpdateURI)
	err = s.startInstall(c, t, func(ctx context.Context, p func(firmware.Progress)) (*firmware.InstallResult, error) {
		return s.fw.InstallFile(ctx, path, p)
	})
	if e, ok := err.(*Error); ok && e.Status == http.StatusServiceUnavailable {
		c.w.Header().Set("Retry-After", strconv.Itoa(UpdateRetryAfter))
	}
	return err
}

// addUpdateService adds the push URI and SimpleUpdate to the UpdateService.
func (s *Server) addUpdateService(doc obj) {
	if s.fw == nil {
		return
	}
	doc["Description"] = "The CMC's two firmware image slots: an update writes the slot that does not run; the Manager's Links.ActiveSoftwareImage selects the slot that boots next."
	doc["MultipartHttpPushUri"] = uploadURI
	if n, err := s.fw.MaxImageSize(); err == nil {
		doc["MaxImageSizeBytes"] = n
	}
	doc["Actions"] = obj{"#UpdateService.SimpleUpdate": obj{
		"target": simpleUpdateURI,
		"title":  "Install an image file that is on the board (ImageURI file:///path)",
		"TransferProtocol@Redfish.AllowableValues": []string{},
	}}
	busy, _ := s.fw.Busy()
	doc["Status"] = status("OK")
	if busy {
		doc["Status"] = obj{"State": "Updating", "Health": "OK"}
	}
}

// ---- SoftwareInventory from the firmware service -----------------------

// fwSlotDoc fills a slot's inventory entry from firmware.Service.Inventory.
func (s *Server) fwSlotDoc(doc obj, sl flash.Slot, health string) {
	var in firmware.SlotInfo
	for _, i := range s.fw.Inventory() {
		if i.Slot == sl {
			in = i
		}
	}
	st := s.fw.State()
	busy, _ := s.fw.Busy()
	img := in.Image
	state := "StandbySpare"
	switch {
	case in.Running:
		state = "Enabled"
	case img.State == flash.ImageInstalling || busy && sl == st.Active.Other():
		state = "Updating"
	case img.State == flash.ImageBad:
		state, health = "UnavailableOffline", "Critical"
	case img.State == flash.ImageEmpty:
		state = "Absent"
	}
	delete(doc, "Version")
	if in.Version != "" {
		doc["Version"] = in.Version
	}
	if !img.BuildTime.IsZero() {
		doc["ReleaseDate"] = rfTime(img.BuildTime)
	}
	doc["Active"] = in.Running
	doc["Updateable"] = !in.Running && st.Trial == nil
	doc["WriteProtected"] = in.Running
	doc["Status"] = obj{"State": state, "Health": health}
	oem := doc["Oem"].(obj)["Cmcd"].(obj)
	oem["ImageState"] = string(img.State)
	oem["NextBoot"] = in.NextBoot
	oem["OnTrial"] = in.OnTrial
	if img.Reason != "" {
		oem["Reason"] = img.Reason
	}
	if !img.Since.IsZero() {
		oem["Since"] = rfTime(img.Since)
	}
	if img.Board != "" {
		oem["Board"] = img.Board
	}
	if img.KeyID != "" {
		oem["KeyId"] = img.KeyID
	}
	if img.ImageSHA256 != "" {
		oem["ImageSHA256"] = img.ImageSHA256
	}
	if in.OnTrial && st.Trial != nil {
		oem["TrialBoots"], oem["TrialLimit"] = st.Trial.Boots, st.Trial.Limit
	}
}

// ---- Manager: ActiveSoftwareImage and the S5 choice -------------------

// nextBootSlot is the slot the Manager's ActiveSoftwareImage shows: the
// one that boots at the next start.
func (s *Server) nextBootSlot() flash.Slot {
	if s.fw != nil {
		for _, in := range s.fw.Inventory() {
			if in.NextBoot {
				return in.Slot
			}
		}
	}
	return s.runningSlot()
}

// addManagerFirmware adds Oem.Cmcd.DataChoice (and while it is pending
// the #Cmcd.DataChoice action) and Oem.Cmcd.Firmware to the Manager.
func (s *Server) addManagerFirmware(doc obj) {
	if s.fw == nil {
		return
	}
	cm := doc["Oem"].(obj)["Cmcd"].(obj)
	r := s.fw.Running()
	cm["Firmware"] = obj{"RunningSlot": r.Slot.String(), "RunningVersion": r.Version, "NextBootSlot": s.nextBootSlot().String()}
	dc := obj{"Pending": false}
	if c := s.fw.DataChoice(); c != nil {
		dc = obj{"Pending": c.State == flash.ChoicePending, "State": c.State, "Version": c.Version, "FromVersion": c.FromVersion,
			"Since": rfTime(c.Offered)}
		if c.Answer != "" {
			dc["Answer"], dc["AnsweredBy"] = answerName(c.Answer), c.By
		}
		if !c.Answered.IsZero() {
			dc["Answered"] = rfTime(c.Answered)
		}
		if c.State == flash.ChoicePending {
			doc["Actions"].(obj)["Oem"].(obj)["#Cmcd.DataChoice"] = obj{
				"target": dataChoiceURI, "title": "Keep the data as the upgrade left it, or restore the data area to the preset defaults",
				"Choice@Redfish.AllowableValues": []string{"Keep", "Restore"}}
		}
	}
	cm["DataChoice"] = dc
}

func answerName(a string) string {
	switch a {
	case firmware.AnswerKeep:
		return "Keep"
	case firmware.AnswerRestore:
		return "Restore"
	}
	return a
}

// activeImagePatch parses Links of a Manager PATCH: only
// ActiveSoftwareImage {"@odata.id": FirmwareInventory/Primary|Backup}.
func (s *Server) activeImagePatch(body map[string]json.RawMessage) (*flash.Slot, error) {
	raw, ok := body["Links"]
	if !ok {
		return nil, nil
	}
	var links map[string]json.RawMessage
	if json.Unmarshal(raw, &links) != nil || links == nil {
		return nil, &Error{Status: http.StatusBadRequest, MessageID: "PropertyValueTypeError", Args: []string{string(raw), "Links"}, Property: "Links"}
	}
	for _, k := range sortedKeys(links) {
		if k != "ActiveSoftwareImage" || s.fw == nil {
			p := "Links/" + k
			return nil, &Error{Status: http.StatusBadRequest, MessageID: "PropertyNotWritable", Args: []string{p}, Property: p}
		}
	}
	const p = "Links/ActiveSoftwareImage"
	var ref struct {
		ID *string `json:"@odata.id"`
	}
	if json.Unmarshal(links["ActiveSoftwareImage"], &ref) != nil || ref.ID == nil {
		return nil, &Error{Status: http.StatusBadRequest, MessageID: "PropertyValueTypeError", Args: []string{string(links["ActiveSoftwareImage"]), p}, Property: p}
	}
	for _, sl := range fwSlots {
		if strings.TrimSuffix(*ref.ID, "/") == firmwareURI(sl) {
			return &sl, nil
		}
	}
	return nil, &Error{Status: http.StatusBadRequest, MessageID: "PropertyValueNotInList", Args: []string{*ref.ID, p}, Property: p,
		Resolution: "Give " + firmwareURI(flash.Primary) + " or " + firmwareURI(flash.Backup) + "."}
}

// activate selects the slot that boots next.
func (s *Server) activate(c *ctx, sl flash.Slot) error {
	err := s.fw.Activate(sl)
	switch {
	case err == nil:
		s.log.Info("redfish: image slot selected for the next boot", "slot", sl, "by", c.account.Username)
		return nil
	case errors.Is(err, firmware.ErrBusy):
		c.w.Header().Set("Retry-After", strconv.Itoa(UpdateRetryAfter))
		return errBusy()
	case errors.Is(err, firmware.ErrOnTrial):
		return &Error{Status: http.StatusConflict, MessageID: "ResourceInUse", Property: "Links/ActiveSoftwareImage", Resolution: err.Error()}
	}
	return &Error{Status: http.StatusBadRequest, MessageID: "PropertyValueIncorrect", Args: []string{"Links/ActiveSoftwareImage", firmwareURI(sl)},
		Property: "Links/ActiveSoftwareImage", Resolution: err.Error()}
}

// postDataChoice answers the S5 keep-or-restore choice.
func (s *Server) postDataChoice(c *ctx) error {
	const action = "DataChoice"
	body, err := c.body()
	if err != nil {
		return err
	}
	var choice string
	for _, k := range sortedKeys(body) {
		if k != "Choice" {
			return &Error{Status: http.StatusBadRequest, MessageID: "ActionParameterUnknown", Args: []string{action, k}}
		}
		if json.Unmarshal(body[k], &choice) != nil {
			return &Error{Status: http.StatusBadRequest, MessageID: "ActionParameterValueTypeError", Args: []string{string(body[k]), k, action}}
		}
	}
	if _, ok := body["Choice"]; !ok {
		return &Error{Status: http.StatusBadRequest, MessageID: "ActionParameterMissing", Args: []string{action, "Choice"}}
	}
	var answer string
	switch choice {
	case "Keep":
		answer = firmware.AnswerKeep
	case "Restore":
		answer = firmware.AnswerRestore
	default:
		return &Error{Status: http.StatusBadRequest, MessageID: "ActionParameterValueNotInList", Args: []string{choice, "Choice", action},
			Resolution: "Choice is Keep (the data as the upgrade left it) or Restore (the data area's preset defaults)."}
	}
	dc, err := s.fw.AnswerDataChoice(answer, c.account.Username)
	if errors.Is(err, firmware.ErrNoChoice) {
		return &Error{Status: http.StatusConflict, MessageID: "ActionNotSupported", Args: []string{"#Cmcd.DataChoice"}, Resolution: err.Error()}
	}
	if err != nil {
		return &Error{Status: http.StatusInternalServerError, MessageID: "GeneralError", Resolution: err.Error()}
	}
	s.log.Info("redfish: keep-or-restore choice answered", "answer", answer, "by", c.account.Username)
	out := successBody()
	out["Oem"] = obj{"Cmcd": obj{"DataChoice": obj{"State": dc.State, "Version": dc.Version, "Answer": answerName(dc.Answer), "AnsweredBy": dc.By}}}
	s.reply(c, http.StatusOK, out)
	return nil
}

// updateRoutes are the routes of this file (with a firmware service).
func (s *Server) updateRoutes() []*route {
	rs := []*route{
		{pattern: taskServiceURI, get: s.getTaskService, getPriv: login},
		{pattern: tasksURI, get: s.getTasks, getPriv: login},
		{pattern: tasksURI + "/{id}", get: s.getTask, getPriv: login},
		{pattern: taskMonitorsURI + "/{id}", get: s.getTaskMonitor, getPriv: login},
	}
	if s.fw == nil {
		return rs
	}
	return append(rs,
		&route{pattern: uploadURI, maxBody: s.uploadLimit,
			ops: map[string]op{"POST": {priv: configCmp, fn: s.postUpload}}},
		&route{pattern: simpleUpdateURI, ops: map[string]op{"POST": {priv: configCmp, fn: s.postSimpleUpdate}}},
		&route{pattern: dataChoiceURI, ops: map[string]op{"POST": {priv: configMgr, fn: s.postDataChoice}}},
	)
}
