// Images on the host side: reading picked or dropped files into pending attachments, and
// the bytes of a run's images (boo/getAttachment), cached per attachmentId, shown full
// size from a temporary copy outside the workspace.

import * as fs from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import * as vscode from 'vscode';
import type { GetAttachmentResult } from './protocol';
import { PendingImage, checkImage, defaultName, extensionFor } from './attachments';

export interface AttachmentSource {
  getAttachment(attachmentId: string): Promise<GetAttachmentResult>;
}

/** Reads image files (picked, dropped from the Explorer, referenced in chat) and checks each. */
export async function readImageFiles(uris: vscode.Uri[], already: number): Promise<{ images: PendingImage[]; errors: string[] }> {
  const images: PendingImage[] = [];
  const errors: string[] = [];
  for (const uri of uris) {
    const name = path.basename(uri.path);
    let bytes: Uint8Array;
    try {
      bytes = await vscode.workspace.fs.readFile(uri);
    } catch (err) {
      errors.push(`Cannot read ${name}: ${err instanceof Error ? err.message : String(err)}`);
      continue;
    }
    const check = checkImage(name, bytes.subarray(0, 16), bytes.byteLength, already + images.length);
    if (!check.ok) {
      errors.push(check.message);
      continue;
    }
    images.push({
      name,
      mimeType: check.mimeType,
      bytes: bytes.byteLength,
      data: Buffer.from(bytes).toString('base64'),
      path: uri.scheme === 'file' ? uri.fsPath : undefined,
    });
  }
  return { images, errors };
}

/** The file picker for images. */
export async function pickImageFiles(defaultUri?: vscode.Uri): Promise<vscode.Uri[]> {
  const picked = await vscode.window.showOpenDialog({
    canSelectMany: true,
    canSelectFiles: true,
    canSelectFolders: false,
    defaultUri,
    openLabel: 'Attach',
    title: 'boo: attach images (PNG, JPEG, GIF, WebP)',
    filters: { Images: ['png', 'jpg', 'jpeg', 'gif', 'webp'] },
  });
  return picked ?? [];
}

/** A run image's bytes by attachmentId (an id names fixed content: cached for the session). */
export class AttachmentCache {
  private readonly cache = new Map<string, Promise<GetAttachmentResult>>();
  private static readonly MAX = 32;

  constructor(private readonly source: AttachmentSource) {}

  get(attachmentId: string): Promise<GetAttachmentResult> {
    let p = this.cache.get(attachmentId);
    if (p) {
      // Most recently used last.
      this.cache.delete(attachmentId);
      this.cache.set(attachmentId, p);
      return p;
    }
    p = this.source.getAttachment(attachmentId);
    this.cache.set(attachmentId, p);
    p.catch(() => this.cache.delete(attachmentId));
    while (this.cache.size > AttachmentCache.MAX) this.cache.delete(this.cache.keys().next().value as string);
    return p;
  }

  /** Opens the image full size in VS Code's image viewer, from a copy in the temp folder. */
  async open(attachmentId: string): Promise<void> {
    try {
      const a = await this.get(attachmentId);
      const dir = path.join(os.tmpdir(), 'boo-attachments');
      await fs.mkdir(dir, { recursive: true, mode: 0o700 });
      const safe = a.name.replace(/[^A-Za-z0-9._-]+/g, '_').replace(/\.[A-Za-z0-9]+$/, '').slice(0, 60) || 'image';
      const file = path.join(dir, `${safe}-${attachmentId.slice(0, 12)}.${extensionFor(a.mimeType)}`);
      await fs.writeFile(file, Buffer.from(a.data, 'base64'), { mode: 0o600 });
      await vscode.commands.executeCommand('vscode.open', vscode.Uri.file(file), { preview: true, viewColumn: vscode.ViewColumn.Beside });
    } catch (err) {
      void vscode.window.showErrorMessage(`boo: cannot open the image: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
}

/**
 * The images among a chat request's references (`#file` of an image, a pasted or
 * dropped image): a Uri whose name is an image's, or binary data with an image type.
 * Other references (code files, selections) are not images and are left alone.
 */
export async function readChatImages(references: readonly { id?: string; name?: string; value?: unknown }[] | undefined): Promise<{ images: PendingImage[]; errors: string[] }> {
  const images: PendingImage[] = [];
  const errors: string[] = [];
  let n = 0;
  for (const ref of references ?? []) {
    const v = ref?.value as { mimeType?: unknown; data?: unknown; reference?: unknown } | undefined;
    if (v instanceof vscode.Uri) {
      if (!/\.(png|jpe?g|gif|webp|bmp|svg|tiff?|ico|avif|heic)$/i.test(v.path)) continue;
      const r = await readImageFiles([v], images.length);
      images.push(...r.images);
      errors.push(...r.errors);
    } else if (v && typeof v === 'object' && typeof v.mimeType === 'string' && v.mimeType.startsWith('image/') && typeof v.data === 'function') {
      const name = (ref.name && /\.[A-Za-z0-9]+$/.test(ref.name) ? ref.name : undefined) ?? (v.reference instanceof vscode.Uri ? path.basename(v.reference.path) : defaultName(v.mimeType, ++n));
      let bytes: Uint8Array;
      try {
        bytes = await (v.data as () => Thenable<Uint8Array>)();
      } catch (err) {
        errors.push(`Cannot read ${name}: ${err instanceof Error ? err.message : String(err)}`);
        continue;
      }
      const check = checkImage(name, bytes.subarray(0, 16), bytes.byteLength, images.length);
      if (!check.ok) errors.push(check.message);
      else images.push({ name, mimeType: check.mimeType, bytes: bytes.byteLength, data: Buffer.from(bytes).toString('base64') });
    }
  }
  return { images, errors };
}
