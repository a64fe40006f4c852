//go:build e2e

package e2e

import "testing"

func TestControlStop(t *testing.T) {
	c, alloc := runTicker(t, "control", 5)
	c.stopPromptly(t, 0, alloc, executorPid(t, c, alloc))
}
