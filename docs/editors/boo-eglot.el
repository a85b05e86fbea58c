;;; boo-eglot.el --- run boo flows from Emacs through eglot  -*- lexical-binding: t; -*-

;; Load it from your init file:   (load "/path/to/boo/docs/editors/boo-eglot.el")
;;
;; M-x boo-eglot-start      start `boo serve' for the current buffer's project
;; M-x boo-launch-flow      run a flow (workspace/executeCommand boo.launchFlow)
;; M-x boo-cancel-run       cancel one (boo.cancelRun)
;;
;; Progress shows in the echo area ($/progress), verified findings as Flymake
;; diagnostics in the buffers boo manages. eglot runs one server per major mode, so
;; boo is attached to `boo-eglot-modes' (text and Markdown files by default): open
;; the project's README to see the findings cited there. Works with Emacs 28 +
;; elpa-eglot 1.9 (Debian 12) and with the eglot built into Emacs 29 and later.

(require 'eglot)
(require 'cl-lib)

(defgroup boo-eglot nil "boo flows through eglot." :group 'tools)

(defcustom boo-eglot-program "boo"
  "The boo binary (a name on `exec-path' or an absolute path)."
  :type 'string)

(defcustom boo-eglot-modes '(text-mode markdown-mode fundamental-mode)
  "Major modes whose buffers boo manages."
  :type '(repeat symbol))

(defcustom boo-eglot-initialization-options nil
  "boo's initializationOptions as a plist, e.g. (:model \"qwen3-coder\" :maxParallelAgents 2)."
  :type 'plist)

(defvar boo-eglot-last-run nil "The id of the last run launched from this Emacs.")

(defclass boo-eglot-server (eglot-lsp-server) ()
  :documentation "The boo server (`boo serve').")

(cl-defmethod eglot-initialization-options ((_server boo-eglot-server))
  (or boo-eglot-initialization-options eglot--{}))

;; eglot 1.9 neither asks for nor shows work-done progress; later versions do both
;; (they define `eglot-report-progress').  For 1.9: advertise the capability, accept
;; the token and print each report in the echo area.
(unless (boundp 'eglot-report-progress)
  (cl-defmethod eglot-client-capabilities :around ((server boo-eglot-server))
    (let ((caps (cl-call-next-method)))
      (plist-put caps :window (list :workDoneProgress t))))
  (cl-defmethod eglot-handle-request
    ((_server boo-eglot-server) (_method (eql window/workDoneProgress/create)) &key _token)
    nil)
  (cl-defmethod eglot-handle-notification
    ((_server boo-eglot-server) (_method (eql $/progress)) &key _token value)
    (let ((kind (plist-get value :kind))
          (title (plist-get value :title))
          (msg (plist-get value :message))
          (pct (plist-get value :percentage)))
      (message "[boo] %s%s%s%s" kind
               (if title (format " %s" title) "")
               (if pct (format " %s%%" pct) "")
               (if msg (format ": %s" msg) "")))))

(defun boo-eglot-start ()
  "Start boo for the current buffer's project (its root is the git repository)."
  (interactive)
  (let ((project (or (project-current) (user-error "boo: this buffer is not in a project (a git repository)"))))
    (eglot (list (if (memq major-mode boo-eglot-modes) major-mode (car boo-eglot-modes)))
           project 'boo-eglot-server (list boo-eglot-program "serve") "plaintext")))

(defun boo-eglot--server ()
  (or (cl-find-if (lambda (s) (object-of-class-p s 'boo-eglot-server))
                  (gethash (project-current) eglot--servers-by-project))
      (user-error "boo: no boo server for this project; M-x boo-eglot-start first")))

(defun boo-launch-flow (flow question &optional band)
  "Run FLOW on this project with QUESTION as its focus (BAND: small, medium, large)."
  (interactive
   (list (read-string "Flow: " "code-review") (read-string "Focus: ")
         (completing-read "Size: " '("small" "medium" "large") nil t nil nil "small")))
  (let* ((server (boo-eglot--server))
         (root (expand-file-name (project-root (eglot--project server))))
         (result (eglot-execute-command
                  server 'boo.launchFlow
                  (vector (list :flow flow :band (or band "small")
                                :input (list :question question)
                                :root (directory-file-name root))))))
    (setq boo-eglot-last-run (plist-get result :runId))
    (message "[boo] %s started: run %s" flow boo-eglot-last-run)
    boo-eglot-last-run))

(defun boo-cancel-run (&optional run-id)
  "Cancel RUN-ID (default: the last run launched from this Emacs)."
  (interactive)
  (let ((id (or run-id boo-eglot-last-run (user-error "boo: no run to cancel"))))
    (eglot-execute-command (boo-eglot--server) 'boo.cancelRun (vector (list :runId id)))))

(provide 'boo-eglot)
;;; boo-eglot.el ends here
