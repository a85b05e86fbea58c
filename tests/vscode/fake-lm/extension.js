// TEST FIXTURE ONLY: an offline, scripted language model. code-server without network has
// no model, and its chat view then refuses every request ("Language model unavailable")
// before any participant runs. With this model registered, `@boo /flow …` reaches the
// boo participant, which does not use the model at all.
const vscode = require('vscode');

exports.activate = function activate(context) {
  context.subscriptions.push(
    vscode.lm.registerLanguageModelChatProvider('copilot', {
      provideLanguageModelChatInformation() {
        return [
          {
            id: 'boo-tests-offline',
            name: 'boo tests offline model',
            family: 'boo-tests',
            version: '1',
            maxInputTokens: 100000,
            maxOutputTokens: 4096,
            isDefault: true,
            isUserSelectable: true,
            capabilities: {},
          },
        ];
      },
      async provideLanguageModelChatResponse(_model, _messages, _options, progress) {
        progress.report(new vscode.LanguageModelTextPart('(offline test model)'));
      },
      async provideTokenCount(_model, text) {
        return typeof text === 'string' ? Math.ceil(text.length / 4) : 1;
      },
    }),
  );
};
exports.deactivate = function deactivate() {};
