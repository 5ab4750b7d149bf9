package main

import "context"

// runShmipc runs the shmipc-go comparison.
func (c *perfClient) runShmipc(ctx context.Context) error {
	c.p.row(&perfRow{Group: "shmipc", Scenario: "shmipc-pingpong", Transport: "shmipc-go", Unavailable: "not built yet"})
	return nil
}
