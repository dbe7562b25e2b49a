@echo off
rem retrain.bat: runs `python -m retrain` with every argument passed through unchanged.
rem Works from a clone (this folder is put on PYTHONPATH) or with the package pip-installed.
rem
rem Usage, in the classic multi-line style (each line but the last ends with ^):
rem   retrain.bat ^
rem   --bottleneck_dir bottleneck ^
rem   --how_many_training_steps 200 ^
rem   --model_dir inception_model/ ^
rem   --output_graph output_graph.pb ^
rem   --output_labels output_labels.txt ^
rem   --image_dir data/train/
rem
rem Python: the active virtual environment's `python` if one is active, else the `py -3`
rem launcher, else `python` on PATH. Double-clicked (or a file dropped on it), the window
rem stays open at the end; set RETRAIN_NO_PAUSE=1 to never pause (e.g. from PowerShell).
setlocal
set "PYTHONPATH=%~dp0;%PYTHONPATH%"
set "RETRAIN_PYTHON="
if defined VIRTUAL_ENV set "RETRAIN_PYTHON=python"
if not defined RETRAIN_PYTHON (
    where py >nul 2>nul && set "RETRAIN_PYTHON=py -3"
)
if not defined RETRAIN_PYTHON (
    where python >nul 2>nul && set "RETRAIN_PYTHON=python"
)
if not defined RETRAIN_PYTHON (
    echo retrain: error: Python 3 not found: install it from python.org with the py launcher 1>&2
    set "RETRAIN_EXIT=9009"
    goto done
)
%RETRAIN_PYTHON% -m retrain %*
set "RETRAIN_EXIT=%ERRORLEVEL%"

:done
rem Explorer starts a double-clicked script as: cmd /c ""<full path of this file>" ...". An
rem interactive prompt's command line (cmdcmdline) holds neither /c nor this path: no pause.
if defined RETRAIN_NO_PAUSE goto finish
setlocal EnableDelayedExpansion
set "LAUNCHED_BY=!cmdcmdline!"
if /i not "!LAUNCHED_BY:%~f0=!"=="!LAUNCHED_BY!" if /i not "!LAUNCHED_BY:/c =!"=="!LAUNCHED_BY!" pause
endlocal

:finish
endlocal & exit /b %RETRAIN_EXIT%
