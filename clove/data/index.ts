// Public surface of the data layer.
export * from './rng.ts';
export * from './image.ts';
export * from './deadleaves.ts';
export * from './fmnist.ts';
export * from './mosaic.ts';
export * from './folder.ts';
export * from './augment.ts';
export * from './views.ts';
