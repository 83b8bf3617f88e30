module github.com/exipc/exipc/conn/conntest

go 1.26.0

replace github.com/exipc/exipc => ../..

require (
	github.com/exipc/exipc v0.0.0
	golang.org/x/net v0.62.0
)

require golang.org/x/sys v0.50.0 // indirect
