// A LayersModel in the standard TensorFlow.js file layout (model.json +
// weights.bin), as tf.loadLayersModel('file://...') reads it. Written by us so
// the bytes go through our fsync/rename path, and readable without tfjs-node.
import * as tf from '@tensorflow/tfjs';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CheckpointError } from '../errors.js';

export interface SavedModelFiles {
  modelJson: string;
  weightsBin: Uint8Array;
}

export async function captureModelFiles(model: tf.LayersModel): Promise<SavedModelFiles> {
  let captured: tf.io.ModelArtifacts | undefined;
  await model.save(
    tf.io.withSaveHandler(async (artifacts) => {
      captured = artifacts;
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
    }),
  );
  if (captured === undefined || captured.weightData === undefined) throw new CheckpointError('the model produced no artifacts to save');
  const weightData = tf.io.CompositeArrayBuffer.join(captured.weightData);
  const json = {
    modelTopology: captured.modelTopology,
    format: 'layers-model',
    generatedBy: captured.generatedBy ?? `TensorFlow.js tfjs-layers v${tf.version.tfjs}`,
    convertedBy: null,
    weightsManifest: [{ paths: ['weights.bin'], weights: captured.weightSpecs ?? [] }],
  };
  return { modelJson: JSON.stringify(json), weightsBin: new Uint8Array(weightData) };
}

/** An IOHandler reading a model.json + weights directory, for environments without tfjs-node's file:// handler. */
export function fileModelHandler(dir: string): tf.io.IOHandler {
  return {
    load: async () => {
      let json: { modelTopology: object; weightsManifest: Array<{ paths: string[]; weights: tf.io.WeightsManifestEntry[] }>; format?: string; generatedBy?: string; convertedBy?: string | null };
      try {
        json = JSON.parse(readFileSync(join(dir, 'model.json'), 'utf8')) as typeof json;
      } catch (err) {
        throw new CheckpointError(`${join(dir, 'model.json')}: cannot read or parse`, { cause: err });
      }
      const specs: tf.io.WeightsManifestEntry[] = [];
      const buffers: Uint8Array[] = [];
      for (const group of json.weightsManifest) {
        specs.push(...group.weights);
        for (const p of group.paths) buffers.push(readFileSync(join(dir, p)));
      }
      const total = buffers.reduce((a, b) => a + b.length, 0);
      const joined = new Uint8Array(total);
      let off = 0;
      for (const b of buffers) {
        joined.set(b, off);
        off += b.length;
      }
      return { modelTopology: json.modelTopology, weightSpecs: specs, weightData: joined.buffer, format: json.format, generatedBy: json.generatedBy, convertedBy: json.convertedBy ?? undefined };
    },
  };
}
