// A generated stand-in for GIMP's textures (P4), so the protocol is tested the same way with or without gimp-data:
// sinusoidal gratings of distinct orientations and periods, and a checkerboard.
import type { GreyTexture } from '../clove/data/gimp.ts';

export function generatedTextures(size = 32): GreyTexture[] {
  const grating = (angle: number, period: number): GreyTexture => {
    const [c, s] = [Math.cos(angle), Math.sin(angle)];
    const grey = Float32Array.from({ length: size * size }, (_, p) => 0.5 + 0.5 * Math.sin((2 * Math.PI * ((p % size) * c + Math.floor(p / size) * s)) / period));
    return { name: `grating-${Math.round((angle * 180) / Math.PI)}deg-${period}px`, width: size, height: size, grey };
  };
  const checker = Float32Array.from({ length: size * size }, (_, p) => ((Math.floor((p % size) / 4) + Math.floor(Math.floor(p / size) / 4)) % 2 === 0 ? 0 : 1));
  return [
    grating(0, 8),
    grating(Math.PI / 2, 8),
    grating(Math.PI / 4, 4),
    grating((3 * Math.PI) / 4, 16),
    grating(0, 3),
    { name: 'checker-4px', width: size, height: size, grey: checker },
  ];
}
