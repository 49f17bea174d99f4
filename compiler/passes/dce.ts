// Dead-code elimination: keep only the nodes some output reaches (rewrites leave the replaced ones behind).
import { makeGraph, type Graph } from '../ir.ts';

export const dce = (g: Graph): Graph => makeGraph(g.outputs);
