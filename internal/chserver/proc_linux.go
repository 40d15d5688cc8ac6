package chserver

import "syscall"

// sysProcAttr puts the server in its own process group and has the kernel
// send it SIGTERM when the thread that started it dies, so a crashed test or
// demo does not leave a server behind.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
}
