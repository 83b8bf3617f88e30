//go:build exipc_testing

package bind

// Mapping returns the address and length of the domain's mapping of its
// segment, so a test can check that a block lies inside it. Built only with
// the exipc_testing build tag.
func (d *Domain) Mapping() (base uintptr, size uint64) {
	if !d.g.Enter() {
		return 0, 0
	}
	defer d.g.Leave()
	return d.nd.Mapping()
}
