// Export of a run's report: clipboard, file (boo/exportRun markdown or json), or the chat.

import * as vscode from 'vscode';
import type { BooClient } from './client';
import { errorMessage } from './client';
import { markdownImages } from './attachments';

export type ExportFormat = 'markdown' | 'json';

export class Exporter {
  constructor(
    private readonly client: BooClient,
    private readonly storageUri: vscode.Uri,
    private readonly workspaceRoot: () => string | undefined,
  ) {}

  async copy(runId: string): Promise<void> {
    try {
      const { content } = await this.client.exportRun(runId, 'markdown');
      await vscode.env.clipboard.writeText(content);
      void vscode.window.showInformationMessage('boo: report copied to the clipboard.');
    } catch (err) {
      void vscode.window.showErrorMessage(`boo: export failed: ${errorMessage(err)}`);
    }
  }

  /** Saves the export; asks where unless `target` is given. Returns the file written. */
  async save(runId: string, format: ExportFormat, target?: vscode.Uri): Promise<vscode.Uri | undefined> {
    try {
      const { content, fileName } = await this.client.exportRun(runId, format);
      let uri = target;
      if (!uri) {
        const root = this.workspaceRoot();
        const defaultUri = root ? vscode.Uri.joinPath(vscode.Uri.file(root), fileName) : undefined;
        uri = await vscode.window.showSaveDialog({
          defaultUri,
          saveLabel: 'Save boo report',
          title: `Save the run as ${format === 'json' ? 'JSON' : 'Markdown'}`,
          filters: format === 'json' ? { JSON: ['json'] } : { Markdown: ['md'] },
        });
      }
      if (!uri) return undefined;
      let text = content;
      if (format === 'markdown') text += await this.writeImages(runId, uri);
      await vscode.workspace.fs.writeFile(uri, new TextEncoder().encode(text));
      void vscode.window.showInformationMessage(`boo: saved ${uri.fsPath}`, 'Open').then((pick) => {
        if (pick === 'Open') void vscode.window.showTextDocument(uri!);
      });
      return uri;
    } catch (err) {
      void vscode.window.showErrorMessage(`boo: export failed: ${errorMessage(err)}`);
      return undefined;
    }
  }

  /**
   * A saved Markdown report shows the run's images: they are written to a folder beside
   * it (`<report>.images/`) and referenced at the end. Returns the Markdown to append
   * ('' for a run without images).
   */
  private async writeImages(runId: string, target: vscode.Uri): Promise<string> {
    const { run } = await this.client.getRun(runId, false);
    const list = Array.isArray(run.attachments) ? run.attachments : [];
    if (!list.length) return '';
    const base = target.path.split('/').pop()!.replace(/\.md$/i, '');
    const { markdown, files } = markdownImages(list, `${base}.images`);
    const dir = vscode.Uri.joinPath(target, '..');
    for (const f of files) {
      const img = await this.client.getAttachment(f.attachmentId);
      const dest = vscode.Uri.joinPath(dir, f.relPath);
      await vscode.workspace.fs.createDirectory(vscode.Uri.joinPath(dest, '..'));
      await vscode.workspace.fs.writeFile(dest, Buffer.from(img.data, 'base64'));
    }
    return markdown;
  }

  /** Opens the chat with the report attached as context (falls back to the clipboard). */
  async sendToChat(runId: string): Promise<void> {
    let content: string;
    let flow = 'boo';
    try {
      content = (await this.client.exportRun(runId, 'markdown')).content;
      flow = (await this.client.getRun(runId, false)).run.flow;
    } catch (err) {
      void vscode.window.showErrorMessage(`boo: export failed: ${errorMessage(err)}`);
      return;
    }
    const dir = vscode.Uri.joinPath(this.storageUri, 'reports');
    const file = vscode.Uri.joinPath(dir, `boo-${flow}-${runId.slice(-8)}.md`);
    try {
      await vscode.workspace.fs.createDirectory(dir);
      await vscode.workspace.fs.writeFile(file, new TextEncoder().encode(content));
      await vscode.commands.executeCommand('workbench.action.chat.open', {
        query: `Here is the boo ${flow} report (attached). `,
        isPartialQuery: true,
        attachFiles: [file],
      });
    } catch (err) {
      await vscode.env.clipboard.writeText(content);
      void vscode.window.showWarningMessage(`boo: the chat could not be opened (${errorMessage(err)}); the report was copied to the clipboard instead.`);
    }
  }
}
