module cmcd

go 1.26.8

require (
	github.com/bougou/go-ipmi v0.9.1 // indirect
	github.com/stmcginnis/gofish v0.26.0 // indirect
	go.etcd.io/bbolt v1.5.0
	golang.org/x/crypto v0.58.0 // indirect
	golang.org/x/sys v0.49.0
	periph.io/x/conn/v3 v3.7.3 // indirect
)
