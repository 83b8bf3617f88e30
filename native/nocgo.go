//go:build !cgo

package native

// exipc is a C core with Go wrappers: it cannot be built without cgo. The
// undefined name below makes such a build fail with a message that says so.
var _ = exipc_requires_cgo__build_with_CGO_ENABLED_1_and_a_C_compiler
