// Package rfschema validates Redfish payloads against DMTF's versioned JSON
// schemas (the shared folder's redfish/json-schema). Tests of every package
// that emits Redfish payloads use it; the product does not.
//
// Dir finds the schema folder: $CMCD_REDFISH_SCHEMAS if set, otherwise the
// first shared/redfish/json-schema found beside the module root or one of
// its parents (the checkout's ../shared), otherwise /work/shared.
package rfschema
