import * as crypto from 'node:crypto';
import * as vscode from 'vscode';
import { makeNonce, webviewHtml } from './html';

export type ViewName = 'pane' | 'launcher' | 'traces' | 'timeline';

export function webviewOptions(extensionUri: vscode.Uri): vscode.WebviewOptions {
  return {
    enableScripts: true,
    enableCommandUris: false,
    localResourceRoots: [vscode.Uri.joinPath(extensionUri, 'media'), vscode.Uri.joinPath(extensionUri, 'dist', 'webview')],
  };
}

export function renderWebview(webview: vscode.Webview, extensionUri: vscode.Uri, view: ViewName, title: string): string {
  return webviewHtml({
    cspSource: webview.cspSource,
    nonce: makeNonce((n) => crypto.randomBytes(n)),
    title,
    view,
    styles: [webview.asWebviewUri(vscode.Uri.joinPath(extensionUri, 'media', 'webview.css')).toString()],
    script: webview.asWebviewUri(vscode.Uri.joinPath(extensionUri, 'dist', 'webview', `${view}.js`)).toString(),
  });
}

export function iconPath(extensionUri: vscode.Uri): vscode.Uri {
  return vscode.Uri.joinPath(extensionUri, 'media', 'boo.svg');
}
