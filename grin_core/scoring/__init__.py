"""GRI scoring and the mask: which weights to unlearn (gri), the top-p% selection (mask), the noise
added to them (noise), training them alone (masked_update), and the cost yardstick of a pass (pass_timing)."""
