// Package ipmisrv makes cmcd an IPMI-over-LAN endpoint (feature I2).
package ipmisrv
