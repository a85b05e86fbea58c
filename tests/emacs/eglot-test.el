;;; eglot-test.el --- boo through a generic LSP client: Emacs + eglot from Debian  -*- lexical-binding: t; -*-
;;
;; Run by scripts/test-emacs.sh:  emacs --batch -Q -l tests/emacs/eglot-test.el
;; Environment: BOO_BIN (the server), BOO_TEST_PROJECT (a git project with README.md),
;; BOO_DB, BOO_QWEN (the fake qwen) and the OPENAI_* variables for the server.
;; Loads the documented configuration (docs/editors/boo-eglot.el), starts `boo serve'
;; through eglot, runs boo.launchFlow through workspace/executeCommand, and checks that
;; the $/progress of the run ends and the verified finding is a Flymake diagnostic in
;; README.md.  Prints "PASS ..." / "FAIL ..." lines and "N passed, M failed".

(require 'package)
(setq package-directory-list '("/usr/share/emacs/site-lisp/elpa"))
(package-initialize)
(require 'eglot)
(require 'flymake)

(defvar boo-test-passed 0)
(defvar boo-test-failed 0)
(defvar boo-test-progress nil "Every $/progress value the server sent, newest first.")
(defvar boo-test-here (file-name-directory (or load-file-name buffer-file-name)))

(defun boo-test-out (fmt &rest args)
  (princ (concat (apply #'format fmt args) "\n")))

(defmacro boo-test (name &rest body)
  (declare (indent 1))
  `(condition-case err
       (progn ,@body
              (setq boo-test-passed (1+ boo-test-passed))
              (boo-test-out "PASS eglot: %s" ,name))
     (error (setq boo-test-failed (1+ boo-test-failed))
            (boo-test-out "FAIL eglot: %s: %s" ,name (error-message-string err)))))

(defun boo-test-wait (seconds pred what)
  "Process events until PRED is true, or fail after SECONDS."
  (let ((end (+ (float-time) seconds)) v)
    (while (and (not (setq v (funcall pred))) (< (float-time) end))
      (accept-process-output nil 0.05))
    (or v (error "timed out after %ss waiting for %s" seconds what))))

(load (expand-file-name "../../docs/editors/boo-eglot.el" boo-test-here) nil t)
(setq boo-eglot-program (getenv "BOO_BIN"))
(setq eglot-sync-connect 30 eglot-connect-timeout 60 eglot-autoshutdown nil)

;; See what the client receives (eglot's own handler runs as well).
(advice-add 'eglot-handle-notification :before
            (lambda (_server method &rest params)
              (when (eq method '$/progress)
                (push (plist-get params :value) boo-test-progress))))

(let* ((project (getenv "BOO_TEST_PROJECT"))
       (readme (expand-file-name "README.md" project))
       server run-id)
  (with-timeout (240 (boo-test-out "FAIL eglot: the whole test timed out") (kill-emacs 3))
    (find-file readme)
    (text-mode)

    (boo-test "boo serve starts through eglot and says what it can run"
      (boo-eglot-start)
      (setq server (boo-test-wait 60 (lambda () (ignore-errors (boo-eglot--server))) "the boo server"))
      (let* ((caps (eglot--capabilities server))
             (cmds (append (plist-get (plist-get caps :executeCommandProvider) :commands) nil)))
        (unless (and (member "boo.launchFlow" cmds) (member "boo.cancelRun" cmds))
          (error "executeCommandProvider lists %S" cmds)))
      (unless (eglot-managed-p) (error "README.md is not managed by boo"))
      (unless (equal (plist-get (eglot--server-info server) :name) "boo")
        (error "serverInfo %S" (eglot--server-info server))))

    (boo-test "workspace/executeCommand boo.launchFlow returns a run id"
      (setq run-id (boo-launch-flow "code-review" "is the README right?" "small"))
      (unless (and (stringp run-id) (string-match-p "^[0-9a-f-]\\{36\\}$" run-id))
        (error "runId %S" run-id)))

    (boo-test "the run's $/progress begins, reports and ends"
      (boo-test-wait 120 (lambda () (cl-find "end" boo-test-progress
                                              :key (lambda (v) (plist-get v :kind)) :test #'equal))
                     "a progress end")
      (let ((kinds (mapcar (lambda (v) (plist-get v :kind)) (reverse boo-test-progress))))
        (unless (equal (car kinds) "begin") (error "first progress is %S" (car kinds)))
        (unless (member "report" kinds) (error "no report in %S" kinds))
        (unless (equal (car (last kinds)) "end") (error "last progress is %S" (car (last kinds))))))

    (boo-test "the verified finding is a Flymake diagnostic on README.md line 1"
      (with-current-buffer (find-buffer-visiting readme)
        (let ((diags (boo-test-wait
                      30 (lambda () (flymake-start) (flymake-diagnostics))
                      "diagnostics in README.md")))
          (let* ((d (car diags))
                 (text (flymake-diagnostic-text d)))
            (unless (string-match-p "^boo: \\[code-review/" text) (error "diagnostic text %S" text))
            (unless (= (line-number-at-pos (flymake-diagnostic-beg d)) 1)
              (error "on line %d" (line-number-at-pos (flymake-diagnostic-beg d))))
            (boo-test-out "  diagnostic: %s" text)))))

    (boo-test "eglot shuts the server down"
      (eglot-shutdown server)
      (when (jsonrpc-running-p server) (error "still running")))))

(boo-test-out "%d passed, %d failed" boo-test-passed boo-test-failed)
(kill-emacs (if (and (= boo-test-failed 0) (> boo-test-passed 0)) 0 1))
