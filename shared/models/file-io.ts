// file:// model IO for @tensorflow/tfjs in Node. Plain @tensorflow/tfjs registers
// only browser handlers (tf.io.getSaveHandlers('file://...') is empty unless
// tfjs-node is loaded), so this writes and reads the standard TensorFlow.js layers
// format itself: a directory with model.json (topology + weightsManifest) and
// weights.bin, the same two files tfjs-node's handler writes; tf.loadLayersModel
// (this handler, or tfjs-node's file://, or an HTTP server) loads them back.
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { ModelError } from '../errors.js';

export const MODEL_JSON = 'model.json';
export const WEIGHTS_BIN = 'weights.bin';
const SCHEME = 'file://';

/** Directory (for save) or model.json path (for load; a directory means its model.json). */
function modelJsonPath(target: string): string {
  return target.endsWith('.json') ? target : path.join(target, MODEL_JSON);
}

async function writeAtomically(file: string, data: string | Uint8Array): Promise<void> {
  const tmp = `${file}.tmp-${process.pid}`;
  await writeFile(tmp, data);
  await rename(tmp, file);
}

/** The model.json object, field for field as tfjs's own handlers write it. */
function modelJsonFor(a: tf.io.ModelArtifacts, weightsManifest: tf.io.WeightsManifestConfig): tf.io.ModelJSON {
  const out: tf.io.ModelJSON = { modelTopology: a.modelTopology as object, weightsManifest };
  if (a.format !== undefined) out.format = a.format;
  if (a.generatedBy !== undefined) out.generatedBy = a.generatedBy;
  if (a.convertedBy !== undefined) out.convertedBy = a.convertedBy;
  if (a.trainingConfig !== undefined) out.trainingConfig = a.trainingConfig;
  if (a.signature !== undefined) out.signature = a.signature;
  if (a.userDefinedMetadata !== undefined) out.userDefinedMetadata = a.userDefinedMetadata;
  if (a.modelInitializer !== undefined) out.modelInitializer = a.modelInitializer;
  if (a.initializerSignature !== undefined) out.initializerSignature = a.initializerSignature;
  return out;
}

/** An IOHandler that saves to / loads from a local directory in the standard layers-model format. */
export function fileSystemIO(target: string): tf.io.IOHandler {
  const save = async (artifacts: tf.io.ModelArtifacts): Promise<tf.io.SaveResult> => {
    if (artifacts.modelTopology instanceof ArrayBuffer) {
      throw new ModelError('saving a binary (graph-model) topology is not supported; this handler writes layers models');
    }
    const dir = target.endsWith('.json') ? path.dirname(target) : target;
    const jsonFile = modelJsonPath(target);
    await mkdir(dir, { recursive: true });
    const weightsManifest: tf.io.WeightsManifestConfig = [{ paths: [WEIGHTS_BIN], weights: artifacts.weightSpecs ?? [] }];
    const modelJson = modelJsonFor(artifacts, weightsManifest);
    const data = artifacts.weightData === undefined ? new ArrayBuffer(0) : tf.io.CompositeArrayBuffer.join(artifacts.weightData);
    await writeAtomically(path.join(dir, WEIGHTS_BIN), new Uint8Array(data));
    await writeAtomically(jsonFile, JSON.stringify(modelJson));
    return { modelArtifactsInfo: tf.io.getModelArtifactsInfoForJSON(artifacts) };
  };

  const load = async (): Promise<tf.io.ModelArtifacts> => {
    const jsonFile = modelJsonPath(target);
    let modelJson: tf.io.ModelJSON;
    try {
      modelJson = JSON.parse(await readFile(jsonFile, 'utf8')) as tf.io.ModelJSON;
    } catch (err) {
      throw new ModelError(`cannot read ${jsonFile}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
    }
    if (modelJson.modelTopology === undefined) throw new ModelError(`${jsonFile} has no modelTopology`);
    const dir = path.dirname(jsonFile);
    return tf.io.getModelArtifactsForJSON(modelJson, async (manifest) => {
      const specs: tf.io.WeightsManifestEntry[] = [];
      const buffers: ArrayBuffer[] = [];
      for (const group of manifest) {
        specs.push(...group.weights);
        for (const p of group.paths) {
          const buf = await readFile(path.join(dir, p));
          buffers.push(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength) as ArrayBuffer);
        }
      }
      return [specs, tf.io.CompositeArrayBuffer.join(buffers)];
    });
  };

  return { save, load };
}

/** tfjs's IORouter type says IOHandler, but the registry expects null for URLs a router does not take. */
function fileRouter(url: string | string[]): tf.io.IOHandler {
  if (typeof url !== 'string' || !url.startsWith(SCHEME)) return null as unknown as tf.io.IOHandler;
  return fileSystemIO(url.slice(SCHEME.length));
}

/**
 * Routes 'file://' URLs in model.save() and tf.loadLayersModel() to fileSystemIO.
 * tfjs's router registry is process-wide; this is a no-op where a file:// handler
 * already exists (called before, or tfjs-node loaded).
 */
export function registerFileRouters(): void {
  const probe = `${SCHEME}${path.join(path.sep, 'lockstep-probe')}`;
  if (tf.io.getSaveHandlers(probe).length === 0) {
    tf.io.registerSaveRouter(fileRouter);
  }
  if (tf.io.getLoadHandlers(probe).length === 0) {
    tf.io.registerLoadRouter(fileRouter);
  }
}
