"""From a CT to one view: projection geometry, attenuation, DRRs, depth maps and detector images."""
