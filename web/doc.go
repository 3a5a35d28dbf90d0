// Package web serves the selection page (SPEC Part W, S2, S5): a small
// page of plain HTML, CSS and JavaScript embedded in the binary, served on
// the Redfish listener under /ui/. It holds no data and needs no
// authentication to load; everything it shows or changes goes through the
// Redfish API with a Redfish session (X-Auth-Token), so the page sees
// exactly the validation and privileges every other client sees.
//
// The page logs in (SessionService), shows the sync selection model as
// check boxes grouped by the engine's round-robin groups, shows an
// option's detailed explanation in a dedicated area when the option is
// clicked or focused, edits the configuration options within their allowed
// values, saves with If-Match, shows the last rounds, the next round and
// the last error, runs "sync now", and, after a firmware upgrade, asks the
// keep-or-restore question of S5.
package web
