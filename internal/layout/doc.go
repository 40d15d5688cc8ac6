// Package layout holds no code: its test checks the module's import graph
// against the layers of the tree (README's package table), so an import
// that runs back up the layers fails `make test-unit`.
package layout
