package redfish

import (
	"fmt"
	"net/http"
	"strings"
)

// baseRegistry is the Base message registry version whose messages the
// service uses (../shared/redfish/registries/Base.1.22.1.json).
const baseRegistry = "Base.1.22"

type baseMessage struct {
	text       string
	severity   string
	resolution string
}

// baseMessages holds the Base registry messages the service emits, copied
// from Base.1.22.1.json.
var baseMessages = map[string]baseMessage{
	"Success":                       {"The request completed successfully.", "OK", "None."},
	"Created":                       {"The resource was created successfully.", "OK", "None."},
	"GeneralError":                  {"A general error has occurred.  See Resolution for information on how to resolve the error, or @Message.ExtendedInfo if Resolution is not provided.", "Critical", "None."},
	"InternalError":                 {"The request failed due to an internal service error.  The service is still operational.", "Critical", "Resubmit the request.  If the problem persists, consider resetting the service."},
	"NoValidSession":                {"There is no valid session established with the implementation.", "Critical", "Establish a session before attempting any operations."},
	"InsufficientPrivilege":         {"There are insufficient privileges for the account or credentials associated with the current session to perform the requested operation.", "Critical", "Either abandon the operation or change the associated access rights and resubmit the request if the operation failed."},
	"ResourceNotFound":              {"The requested resource of type %1 named '%2' was not found.", "Critical", "Provide a valid resource identifier and resubmit the request."},
	"OperationNotAllowed":           {"The HTTP method is not allowed on this resource.", "Critical", "None."},
	"PreconditionFailed":            {"The ETag supplied did not match the ETag required to change this resource.", "Critical", "Try the operation again using the appropriate ETag."},
	"PayloadTooLarge":               {"The supplied payload exceeds the maximum size supported by the service.", "Critical", "Correct the request body and resubmit the request if it failed."},
	"MalformedJSON":                 {"The request body submitted was malformed JSON and could not be parsed by the receiving service.", "Critical", "Ensure that the request body is valid JSON and resubmit the request."},
	"PropertyUnknown":               {"The property %1 is not in the list of valid properties for the resource.", "Warning", "Remove the unknown property from the request body and resubmit the request if the operation failed."},
	"PropertyNotWritable":           {"The property %1 is a read-only property and cannot be assigned a value.", "Warning", "Remove the property from the request body and resubmit the request if the operation failed."},
	"PropertyValueTypeError":        {"The value '%1' for the property %2 is not a type that the property can accept.", "Warning", "Correct the value for the property in the request body and resubmit the request if the operation failed."},
	"PropertyValueNotInList":        {"The value '%1' for the property %2 is not in the list of acceptable values.", "Warning", "Choose a value from the enumeration list that the implementation can support and resubmit the request if the operation failed."},
	"PropertyValueIncorrect":        {"The property '%1' with the requested value of '%2' could not be written because the value is not acceptable for the property.", "Warning", "Correct the value for the property in the request body and resubmit the request if the operation failed."},
	"PropertyMissing":               {"The property %1 is a required property and must be included in the request.", "Warning", "Ensure that the property is in the request body and has a valid value and resubmit the request if the operation failed."},
	"QueryNotSupported":             {"Querying is not supported by the implementation.", "Warning", "Remove the query parameters and resubmit the request if the operation failed."},
	"ActionNotSupported":            {"The action %1 is not supported by the resource.", "Critical", "Check the Actions property in the resource for the supported actions."},
	"ActionParameterUnknown":        {"The action %1 was submitted with the invalid parameter %2.", "Warning", "Correct the invalid action parameter and resubmit the request if the operation failed."},
	"HeaderInvalid":                 {"The header '%1' is invalid.", "Critical", "Resubmit the request with a valid header."},
	"ResourceCannotBeDeleted":       {"The delete request failed because the resource requested cannot be deleted.", "Critical", "Do not attempt to delete a non-deletable resource."},
	"ServiceTemporarilyUnavailable": {"The service is temporarily unavailable.  Retry in %1 seconds.", "Critical", "Wait for the indicated retry duration and retry the operation."},
}

// Error is a Redfish error answer: an HTTP status and one Base registry
// message with its arguments.
type Error struct {
	Status     int
	MessageID  string // a Base registry message id, e.g. "PropertyUnknown"
	Args       []string
	Property   string // JSON pointer of the property concerned, if any
	Resolution string // overrides the registry's resolution when set
}

func (e *Error) Error() string { return e.MessageID + ": " + e.message() }

func (e *Error) message() string {
	m := baseMessages[e.MessageID]
	s := m.text
	for i := len(e.Args); i > 0; i-- {
		s = strings.ReplaceAll(s, fmt.Sprintf("%%%d", i), e.Args[i-1])
	}
	return s
}

func errorf(status int, id string, args ...string) *Error {
	return &Error{Status: status, MessageID: id, Args: args}
}

func (e *Error) extendedInfo() map[string]any {
	m := baseMessages[e.MessageID]
	args := e.Args
	if args == nil {
		args = []string{}
	}
	res := m.resolution
	if e.Resolution != "" {
		res = e.Resolution
	}
	info := map[string]any{
		"@odata.type":     "#Message.v1_3_0.Message",
		"MessageId":       baseRegistry + "." + e.MessageID,
		"Message":         e.message(),
		"MessageArgs":     args,
		"MessageSeverity": m.severity,
		"Resolution":      res,
	}
	if e.Property != "" {
		info["RelatedProperties"] = []string{"#/" + strings.TrimPrefix(e.Property, "/")}
	}
	return info
}

// body is the Redfish error response body (redfish-error.v1_0_2).
func (e *Error) body() map[string]any {
	return map[string]any{"error": map[string]any{
		"code":                  baseRegistry + "." + e.MessageID,
		"message":               e.message(),
		"@Message.ExtendedInfo": []any{e.extendedInfo()},
	}}
}

var (
	errNoSession    = errorf(http.StatusUnauthorized, "NoValidSession")
	errForbidden    = errorf(http.StatusForbidden, "InsufficientPrivilege")
	errMalformed    = errorf(http.StatusBadRequest, "MalformedJSON")
	errPrecondition = errorf(http.StatusPreconditionFailed, "PreconditionFailed")
	errTooLarge     = errorf(http.StatusRequestEntityTooLarge, "PayloadTooLarge")
	errNotAllowed   = errorf(http.StatusMethodNotAllowed, "OperationNotAllowed")
)

func notFound(typ, name string) *Error {
	return errorf(http.StatusNotFound, "ResourceNotFound", typ, name)
}
